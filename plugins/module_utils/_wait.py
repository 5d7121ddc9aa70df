# -*- coding: utf-8 -*-
# Copyright (c) lowspec.bluegreen contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to the collection: this file may change without notice.
#
# Bounded waits that show progress the Ansible way. A module that waits (a
# drain, a health check, workers' readiness, host pressure) waits at most
# `wait_slice` seconds per call; a wait that is not over then ends the call
# with `waiting: true` and a `progress` sentence, and the task repeats the
# call (`until: not result.waiting`, `retries`), so that Ansible prints a
# line per slice. The wait's start is kept in the journal between the calls,
# so that its deadline is the same for all of them.

from __future__ import annotations

import time


class Wait:
    """One wait of one module call.

    `deadline`: the whole wait's bound, from its first start (journal);
    `until`: when this call stops waiting (the slice's end, or the deadline).
    Times are the host's wall clock, which the calls of one wait share.
    """

    def __init__(self, name, timeout, journal=None, wait_slice=0, clock=time.time):
        self.name = name
        self.timeout = timeout
        self.journal = journal if journal is not None and journal.path else None
        self.clock = clock
        now = clock()
        self.started = self.journal.wait_started(name, now) if self.journal else now
        self.deadline = self.started + timeout
        # Without a journal the wait cannot span calls: it takes the whole time in this one.
        self.until = min(self.deadline, now + wait_slice) if (wait_slice and self.journal) else self.deadline

    def left(self):
        return max(self.deadline - self.clock(), 0.0)

    def expired(self):
        return self.clock() >= self.deadline

    def slice_over(self):
        return self.clock() >= self.until

    def remaining(self):
        """Seconds this call may still wait."""
        return max(self.until - self.clock(), 0.0)

    def elapsed(self):
        return self.clock() - self.started

    def pause(self):
        """This call stops, the wait goes on in the next one."""
        self.paused = True
        if self.journal:
            self.journal.wait_goes_on(self.name, self.started, self.clock())

    def done(self):
        if self.journal:
            self.journal.wait_done(self.name)

    # `with Wait(...) as wait:` - a wait that ends any other way than pause() (done, expired, failed)
    # leaves nothing in the journal.
    paused = False

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        if not self.paused:
            self.done()
        return False

    def progress(self, what):
        return "%s: %.0f s of %g s waited, %.0f s left" % (what, self.elapsed(), self.timeout, self.left())
