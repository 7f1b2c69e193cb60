from django.dispatch import Signal


# Sent (with the workspace and its current period) after a workspace's usage was written to the database by the flusher,
# so the dashboard can push fresh meters to open pages.
usage_changed = Signal()
