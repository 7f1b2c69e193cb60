"""The Celery app, configured from Django settings (the CELERY_* names)."""

import logging
import os
import sys
from typing import TextIO

from celery import Celery, Task
from celery.signals import (
    before_task_publish,
    setup_logging,
    task_postrun,
    task_prerun,
    task_received,
    worker_ready,
)
from celery.worker.request import Request

from avtrz.lib.logs import JsonFormatter, request_id


os.environ.setdefault("DJANGO_SETTINGS_MODULE", "avtrz.settings")

# The id of the request that queued a task travels in its message, so the task's log lines carry it:
# the worker's "received" line, everything the task logs, and its result line.
REQUEST_ID_HEADER = "x_request_id"


class TracedRequest(Request):
    """The worker's record of a message it took: it logs "Task ... received" right after making one,
    so the request id is made current here, and `forget_request_id` clears it once that line is out."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        request_id.set(self.request_dict.get(REQUEST_ID_HEADER) or "-")


class TracedTask(Task):
    # celery-types has Request as a dotted path only; Celery takes the class itself as well.
    Request = TracedRequest  # type: ignore[assignment]


app = Celery("avtrz", task_cls=TracedTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@before_task_publish.connect
def send_request_id(headers: dict, **kwargs) -> None:
    current = request_id.get()
    if current != "-":
        headers[REQUEST_ID_HEADER] = current


@task_prerun.connect
def restore_request_id(task, **kwargs) -> None:
    # An eager task runs in the caller's context, request id and all.
    if not task.request.is_eager:
        request_id.set(task.request.get(REQUEST_ID_HEADER) or "-")


@task_received.connect
def forget_received_request_id(**kwargs) -> None:
    forget_request_id()


@task_postrun.connect
def forget_task_request_id(task, **kwargs) -> None:
    if not task.request.is_eager:
        forget_request_id()


def forget_request_id() -> None:
    # A worker takes and runs one task after another in one context: its own lines in between belong to
    # no request.
    request_id.set("-")


@setup_logging.connect
def use_django_logging(**kwargs) -> None:
    """Workers and beat log through Django's LOGGING (JSON lines in production), not Celery's own format.

    Taking over logging also takes over Celery's redirection of print() output to the log, so that is
    done here, as Celery would."""
    from celery.apps import worker
    from django.conf import settings
    from django.utils.log import configure_logging

    configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)
    if app.conf.worker_redirect_stdouts:
        app.log.redirect_stdouts(app.conf.worker_redirect_stdouts_level)
    if settings.LOG_FORMAT == "json":
        worker.safe_say = say_as_json  # type: ignore[attr-defined]  # celery-types leaves this function out


def say_as_json(message: str, file: TextIO | None = None) -> None:
    """Celery's worker announces a shutdown ("worker: Warm shutdown") from its signal handler with a raw
    write to stdout, past logging; this writes the same line as a JSON log record, as raw."""
    record = logging.LogRecord("celery.apps.worker", logging.INFO, __file__, 0, message.strip(), None, None)
    stream = file or sys.__stdout__
    if stream is not None:  # None only in a process started without a stdout
        os.write(stream.fileno(), f"{JsonFormatter().format(record)}\n".encode())


@worker_ready.connect
def warn_about_a_redis_broker(**kwargs) -> None:
    """Deployments that set only REDIS_URL run their workers on Redis: say, once a worker is up, what it costs."""
    if app.conf.broker_url.startswith(("redis://", "rediss://", "unix://")):
        logging.getLogger(__name__).warning(
            "Redis is the Celery broker: the task of a worker that dies is delivered again only after "
            "CELERY_VISIBILITY_TIMEOUT_S (%s s). Set CELERY_BROKER_URL to a RabbitMQ to have it at once "
            "(README, Deploy).",
            app.conf.broker_transport_options.get("visibility_timeout"),
        )
