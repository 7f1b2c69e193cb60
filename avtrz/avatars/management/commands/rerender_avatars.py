"""Re-render stored avatars with the current framing rule, from the kept source photos."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from avtrz.avatars import crops, imaging, tasks


class Command(BaseCommand):
    help = (
        "Re-render the current avatar of every profile made with an older framing rule (manual crops are "
        "left alone). Each re-render stores new content-hash files; the old ones stay, so old URLs keep working."
    )

    def add_arguments(self, parser):
        parser.add_argument("handles", nargs="*", help="Only these profiles (default: all).")
        parser.add_argument("--force", action="store_true", help="Re-render even avatars made with the current rule.")
        parser.add_argument("--limit", type=int, default=None, help="At most this many avatars.")
        parser.add_argument("--queue", action="store_true", help="Queue one Celery task for all outdated avatars.")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be re-rendered.")

    def handle(self, *args, handles: list[str], force: bool, limit: int | None, queue: bool, dry_run: bool, **opts):
        if dry_run:
            images = crops.outdated_images()
            if handles:
                images = images.filter(profile__handle__in=handles)
            count = images.count()
            self.stdout.write(f"{count} avatar(s) made with a framing rule older than {imaging.FRAMING_VERSION}.")
            return
        if queue:
            tasks.rerender_avatars.delay(force=force)
            self.stdout.write("Queued a re-render of outdated avatars.")
            return
        done, failed = crops.rerender_outdated(handles=handles, force=force, limit=limit)
        self.stdout.write(f"Re-rendered {done} avatar(s) with framing rule {imaging.FRAMING_VERSION}; {failed} failed.")
