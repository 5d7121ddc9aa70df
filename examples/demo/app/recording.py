"""A beat scheduler that records every send, with the sending beat's color.

Task run times are not send times when a backlog is queued, so the beat itself
writes what it sends (and when) before sending. Two live schedulers show up as
two colors sending within one period.
"""

from celery.beat import PersistentScheduler

import tasks


class RecordingScheduler(PersistentScheduler):
    def apply_entry(self, entry, producer=None):
        tasks._record("demo:beat_sends", entry=entry.name)  # pylint: disable=protected-access
        return super().apply_entry(entry, producer=producer)
