# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The benchmark's parts (bench/bench.py is the entry point):

  common    settings, small helpers, the HTTP client (test host and loopback only)
  target    the test host (fleet.sh), the small-host budget (cgroups), process
            accounting and the test daemon's exec events
  stack     one fresh demo app stack on the test host, behind its own nginx
  measure   the sampler and the HTTP load (separate processes), the health probe
  runs      one deploy (scripts over SSH, the role over SSH, with Mitogen) and the floor
  metrics   the figures of a run: summary, counts, phase timeline, floor
  report    the tables, the targets and the plot
"""
