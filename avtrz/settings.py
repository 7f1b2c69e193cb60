"""Avtrz settings: one file, configured by environment variables.

The embedded default (no variables set) is SQLite, an in-process cache and channel layer,
Celery tasks run eagerly in-process and images on the local disk: `make run` and go.
Production sets DATABASE_URL, REDIS_URL, SECRET_KEY, PUBLIC_BASE_URL and DEBUG=false.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.conf import global_settings
from django.core.exceptions import ImproperlyConfigured

from avtrz.lib.redisclient import StallBreakerConnection


BASE_DIR = Path(__file__).resolve().parent.parent


def envstr(name: str, default: str = "") -> str:
    """A string setting; `NAME_FILE` wins so container secrets can be mounted as files."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def envint(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None


def envfloat(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# ---------------------------------------------------------------- general
DEBUG = envbool("DEBUG", False)
TESTING = "pytest" in sys.modules or sys.argv[1:2] == ["test"]

DEV_SECRET_KEY = "django-insecure-avtrz-development-only-never-use-in-production"  # noqa: S105 (a known value on purpose; refused outside development)
SECRET_KEY = envstr("SECRET_KEY", DEV_SECRET_KEY)
if not DEBUG and not TESTING and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is the development default while DEBUG is off. "
        "Set SECRET_KEY (or SECRET_KEY_FILE) to a long random value, or DEBUG=true for local work."
    )

# Keys retired by a rotation, newest first: what they signed (sessions, password reset links, OAuth
# client secret digests) still verifies, and everything new uses SECRET_KEY.
SECRET_KEY_FALLBACKS = envlist("SECRET_KEY_FALLBACKS")

# The public origin users and AI clients reach us at. It is the OAuth issuer and the base of
# every absolute URL we hand out, so it is kept exactly as given, without a trailing slash.
PUBLIC_BASE_URL = envstr("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
_public = urlsplit(PUBLIC_BASE_URL)
if _public.scheme not in {"http", "https"} or not _public.hostname:
    raise ImproperlyConfigured(f"PUBLIC_BASE_URL must be an absolute http(s) URL, not {PUBLIC_BASE_URL!r}")
PUBLIC_HOST = _public.hostname

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS") or [PUBLIC_HOST]
if DEBUG or TESTING:
    ALLOWED_HOSTS += ["127.0.0.1", "localhost", "[::1]", "testserver"]
CSRF_TRUSTED_ORIGINS = [f"{_public.scheme}://{_public.netloc}"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "oauth2_provider",
    "accounts",
    "workspaces",
    "avtrz.avatars",
    "mcpserver",
]

MIDDLEWARE = [
    "avtrz.lib.logs.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "avtrz.lib.middleware.ContentSecurityPolicyMiddleware",
    "avtrz.lib.middleware.DatabaseUnavailableMiddleware",
    "avtrz.lib.middleware.NulCharacterMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "avtrz.lib.middleware.ProductErrorPagesMiddleware",
]
# Under DEBUG, Django's technical 404/500 pages instead of the product's (avtrz.lib.middleware).
DEBUG_TECHNICAL_ERRORS = envbool("DEBUG_TECHNICAL_ERRORS", False)

ROOT_URLCONF = "avtrz.urls"
ASGI_APPLICATION = "avtrz.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "avtrz.site.context_processors.product",
                "workspaces.context_processors.current_workspace",
            ],
        },
    },
]

# ---------------------------------------------------------------- database
DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=envint("DB_CONN_MAX_AGE", 0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers queue up instead of failing with "database is locked" under concurrent requests.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000;",
        "transaction_mode": "IMMEDIATE",
    }
# A file, not memory, so servers the tests start in a subprocess can share the test database;
# one per test run (the servers are told its name), so two runs on one checkout do not collide.
DATABASES["default"].setdefault("TEST", {})
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"]["NAME"] = str(BASE_DIR / "var" / f"test-db-{os.getpid()}.sqlite3")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ---------------------------------------------------------------- cache, channels, celery
REDIS_URL = envstr("REDIS_URL")
# A Redis that stalls instead of refusing (packets dropped, a failover) must not hold requests: every
# client of it (the cache, the hot cache and counters in avtrz.lib.redisclient, the channel layer, Celery)
# gives up on a connect or a read after this long, and the callers fail open or fall back as on a refusal.
REDIS_TIMEOUT_S = envfloat("REDIS_TIMEOUT_S", 1.0)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": envstr("CACHE_KEY_PREFIX", "avtrz"),
            # Django's pool makes connections without redis-py's default retries: one try per call,
            # and none for a moment after one timed out (avtrz.lib.redisclient.StallBreakerConnection).
            "OPTIONS": {
                "socket_timeout": REDIS_TIMEOUT_S,
                "socket_connect_timeout": REDIS_TIMEOUT_S,
                "connection_class": StallBreakerConnection,
            },
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            # channels_redis's layer, whose receive ends when a leaving page's consumer cancels it
            # (on Python 3.11 redis-py could lose that cancellation: see avtrz.lib.channel_layer).
            "BACKEND": "avtrz.lib.channel_layer.CancellableRedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        # A WebSocket's receive blocks in Redis (BZPOPMIN) for up to the layer's
                        # brpop_timeout (5 s): a read timeout below that failed the receive every
                        # second, closing each live dashboard's connection (the page reconnected).
                        "socket_timeout": 5 + REDIS_TIMEOUT_S,
                        "socket_connect_timeout": REDIS_TIMEOUT_S,
                    }
                ],
                "prefix": "avtrz:ch",
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "avtrz"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CELERY_BROKER_URL = envstr("CELERY_BROKER_URL", REDIS_URL or "memory://")
# Without a broker the product still works on one machine: tasks run in-process, in order.
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", not (REDIS_URL or os.environ.get("CELERY_BROKER_URL")))
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 90
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# With acks_late a task that outlives the visibility timeout would be re-delivered while still
# running; keep it well above the hard time limit. It is also how long a task whose worker died waits
# to be delivered again.
_visibility_timeout_s = envint("CELERY_VISIBILITY_TIMEOUT_S", 3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": _visibility_timeout_s,
    # How often a worker looks for such tasks: kombu's default scans every 10th sweep of 10 s (about
    # 100 s late on top of the timeout, and a worker started just before a task became due missed it
    # for that long); one small sorted-set read every few seconds per worker.
    "unacked_restore_interval": max(1, min(10, _visibility_timeout_s)),
    "unacked_restore_throttle": 1,
    # Queuing a task from a request against a stalled Redis gives up instead of holding the request;
    # the worker's own waits for tasks are event-driven and unaffected.
    "socket_timeout": REDIS_TIMEOUT_S,
    "socket_connect_timeout": REDIS_TIMEOUT_S,
}
CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_TIMEOUT_S
# One more try after a failed publish, not Celery's three: a stalled broker costs a request that
# queues a task about twice REDIS_TIMEOUT_S before the publish fails.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
# Several deployments (or test runs) can share one broker, each on its own queue.
CELERY_TASK_DEFAULT_QUEUE = envstr("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}

# ---------------------------------------------------------------- auth
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "workspaces:home"
LOGOUT_REDIRECT_URL = "landing"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# User passwords keep Django's default (PBKDF2). OAuth client secrets are random, so they get a fast
# keyed digest instead (accounts.hashers, named by OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"]); secrets
# stored with PBKDF2 before it still verify, and are re-hashed on their next use.
PASSWORD_HASHERS = [*global_settings.PASSWORD_HASHERS, "accounts.hashers.ClientSecretHasher"]
if TESTING:
    # Hashing speed is not what the tests measure; the others stay to verify what they stored.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]
# Failed sign-ins allowed per (email, client address) and per client address in LOGIN_RATE_WINDOW_S;
# an unlock link mailed to the owner (accounts.unlock) lasts LOGIN_UNLOCK_TTL_S.
LOGIN_RATE_LIMIT = envint("LOGIN_RATE_LIMIT", 5)
LOGIN_ADDRESS_RATE_LIMIT = envint("LOGIN_ADDRESS_RATE_LIMIT", 30)
LOGIN_RATE_WINDOW_S = envint("LOGIN_RATE_WINDOW_S", 900)
LOGIN_UNLOCK_TTL_S = envint("LOGIN_UNLOCK_TTL_S", 3600)
# Password reset requests per email (quietly: no more mail, the same answer) and per client address.
PASSWORD_RESET_EMAIL_LIMIT = envint("PASSWORD_RESET_EMAIL_LIMIT", 3)
PASSWORD_RESET_ADDRESS_LIMIT = envint("PASSWORD_RESET_ADDRESS_LIMIT", 10)
PASSWORD_RESET_WINDOW_S = envint("PASSWORD_RESET_WINDOW_S", 3600)

# ---------------------------------------------------------------- email
# Development prints mail to the console. In production mail carries password reset and unlock links,
# so the console (the logs) is no place for it: SMTP (EMAIL_HOST) or an explicit EMAIL_BACKEND is
# required when DEBUG is off (checked below, after the settings production cannot do without).
EMAIL_BACKEND = envstr(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if os.environ.get("EMAIL_HOST")
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = envstr("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
EMAIL_FILE_PATH = envstr("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "Avtrz <no-reply@avtrz.local>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# ---------------------------------------------------------------- i18n, static, media
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(envstr("MEDIA_ROOT", str(BASE_DIR / "media")))
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# Images (avatar renditions and source photos, all named by content hash) go to S3-compatible object
# storage when a bucket is named; AVTRZ_IMAGE_BASE_URL then points durable URLs at the bucket or its CDN.
AVTRZ_STORAGE = envstr("AVTRZ_STORAGE", "s3" if envstr("AWS_STORAGE_BUCKET_NAME") else "local")
if AVTRZ_STORAGE == "s3":
    if not envstr("AWS_STORAGE_BUCKET_NAME"):
        raise ImproperlyConfigured("AVTRZ_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME.")
    STORAGES["default"] = {
        "BACKEND": "avtrz.lib.storage.ImageStorage",
        "OPTIONS": {
            "bucket_name": envstr("AWS_STORAGE_BUCKET_NAME"),
            # None lets boto3 use its own defaults and credential chain (instance roles, profiles).
            "endpoint_url": envstr("AWS_S3_ENDPOINT_URL") or None,
            "region_name": envstr("AWS_S3_REGION_NAME") or None,
            "access_key": envstr("AWS_ACCESS_KEY_ID") or None,
            "secret_key": envstr("AWS_SECRET_ACCESS_KEY") or None,
            # Public, content-addressed objects: plain URLs, no expiring signatures.
            "querystring_auth": False,
        },
    }
elif AVTRZ_STORAGE != "local":
    raise ImproperlyConfigured(f"AVTRZ_STORAGE must be local or s3, not {AVTRZ_STORAGE!r}")
# Serve straight from static/ during development and tests, no collectstatic step needed.
WHITENOISE_USE_FINDERS = DEBUG or TESTING
if WHITENOISE_USE_FINDERS:
    warnings.filterwarnings("ignore", message="No directory at", module="whitenoise.base")

# ---------------------------------------------------------------- security
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# The reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For and
# X-Forwarded-Proto are believed (avtrz/asgi.py; uvicorn runs with --no-proxy-headers, so this is the
# only place that decides). Default none: the peer is the client, and no client can choose the
# address the per-address limits (sign-in, key guessing, registration) count, nor pass plain HTTP off
# as https. So no SECURE_PROXY_SSL_HEADER: Django would believe X-Forwarded-Proto from anyone; the
# scheme it uses is the ASGI scope's, which avtrz/asgi.py sets from a trusted proxy's header.
TRUSTED_PROXY_IPS = envlist("TRUSTED_PROXY_IPS")
for _proxy in TRUSTED_PROXY_IPS:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"TRUSTED_PROXY_IPS: {_proxy!r} is not an address or a network (like 10.0.0.5 or 10.0.0.0/8); list "
            "your proxies' addresses: trusting any sender would let every client pick its address."
        ) from None
if not DEBUG:
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", not TESTING)
    SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", not TESTING)
    CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", not TESTING)
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0 if TESTING else 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# ---------------------------------------------------------------- logging
# JSON lines in production (one object per record, with the request id), readable lines in development.
LOG_FORMAT = envstr("LOG_FORMAT", "plain" if DEBUG or TESTING else "json")
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
# avtrz.lib.logs.configure also logs Python's warnings (py.warnings) through it.
LOGGING_CONFIG = "avtrz.lib.logs.configure"
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "avtrz.lib.logs.RequestIdFilter"},
        "redact": {"()": "avtrz.lib.logs.RedactSecretsFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "avtrz.lib.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id", "redact"]}
    },
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {
        # uvicorn installs its own handlers before Django starts; this puts its lines in the same format.
        "uvicorn.error": {"handlers": ["console"], "propagate": False},
        # Without Django's own handlers (plain console lines in DEBUG, mail to ADMINS with the whole request),
        # its records reach the root handler only, redacted and formatted like the rest.
        "django": {"handlers": [], "level": "INFO"},
        "django.db.backends": {"level": "WARNING"},
        # The MCP SDK logs every request at INFO; its warnings and errors are what matter.
        "mcp": {"level": envstr("MCP_LOG_LEVEL", "WARNING")},
    },
}

# uvicorn's access log prints query strings, keys included: when it is on (no --no-access-log, which
# leaves it without handlers), it goes through the same redaction and format.
if logging.getLogger("uvicorn.access").handlers:
    LOGGING["loggers"]["uvicorn.access"] = {"handlers": ["console"], "propagate": False}

# ---------------------------------------------------------------- health, error reporting
# Each of /healthz's checks (database, cache, broker) must answer within this many seconds.
HEALTH_CHECK_TIMEOUT_S = envfloat("HEALTH_CHECK_TIMEOUT_S", 2.0)
SENTRY_DSN = envstr("SENTRY_DSN")
if SENTRY_DSN:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    from avtrz.lib.logs import sentry_before_send

    sentry_sdk.init(
        dsn=SENTRY_DSN,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        environment=envstr("SENTRY_ENVIRONMENT", "production"),
        traces_sample_rate=envfloat("SENTRY_TRACES_SAMPLE_RATE", 0.0),
        # No user emails, addresses or cookies; keys and tokens are cut out of whatever is left.
        send_default_pii=False,
        before_send=sentry_before_send,
    )

# ---------------------------------------------------------------- product
# The plan a new workspace starts on (a Plan.code).
AVTRZ_DEFAULT_PLAN = envstr("AVTRZ_DEFAULT_PLAN", "free")
# Derives the AI connector's publishable keys (workspaces.ApiKey.derived_value), so the MCP tools can
# hand the key out again. Its own secret, not SECRET_KEY: rotating SECRET_KEY must not change them.
# To rotate it, set the new value and list the old one in the FALLBACKS: keys derived from a fallback
# keep being handed out unchanged (the URLs already out stay the same), new keys use the new secret.
# A key that no configured secret reproduces is replaced on its next use, the old one answering
# /v1/avatar for AVTRZ_CONNECTOR_KEY_GRACE_S (workspaces.services.connector_publishable_key).
AVTRZ_KEY_DERIVATION_SECRET = envstr("AVTRZ_KEY_DERIVATION_SECRET")
AVTRZ_KEY_DERIVATION_SECRET_FALLBACKS = envlist("AVTRZ_KEY_DERIVATION_SECRET_FALLBACKS")
if not AVTRZ_KEY_DERIVATION_SECRET:
    if not DEBUG and not TESTING:
        raise ImproperlyConfigured(
            "Set AVTRZ_KEY_DERIVATION_SECRET (or AVTRZ_KEY_DERIVATION_SECRET_FILE) to a long random value: it "
            "derives the AI connector's publishable keys and no longer falls back to SECRET_KEY. Upgrading? "
            "Set it to the SECRET_KEY that derived the keys in use (or a new value, with that SECRET_KEY in "
            "AVTRZ_KEY_DERIVATION_SECRET_FALLBACKS) so the keys assistants already hand out stay the same."
        )
    # The embedded default derives its own, so `make run` needs no setting.
    AVTRZ_KEY_DERIVATION_SECRET = hmac.new(SECRET_KEY.encode(), b"avtrz connector keys", hashlib.sha256).hexdigest()
# Each server process writes its usage counts to the database from a background thread; the test
# suite writes them explicitly instead (workspaces.usage.flush_now).
AVTRZ_BACKGROUND_FLUSH = envbool("AVTRZ_BACKGROUND_FLUSH", not TESTING)
# Namespace of the usage and rate counters in Redis.
AVTRZ_COUNTER_PREFIX = envstr("AVTRZ_COUNTER_PREFIX", "avtrz:")
# Invalid API keys a client address may send to /v1/avatar and /v1/usage per window before it gets
# 429 (workspaces.keys.guessing_retry_after); keys already known to be valid are not held back.
AVTRZ_INVALID_KEY_LIMIT = envint("AVTRZ_INVALID_KEY_LIMIT", 30)
AVTRZ_INVALID_KEY_WINDOW_S = envint("AVTRZ_INVALID_KEY_WINDOW_S", 60)
# How long a rotated AI connector key keeps answering /v1/avatar, so image URLs assistants already
# handed out keep working while new answers carry the new key (workspaces.services.rotate_connector_key).
AVTRZ_CONNECTOR_KEY_GRACE_S = envint("AVTRZ_CONNECTOR_KEY_GRACE_S", 7 * 24 * 3600)
# Where "contact support" links go (plan changes without Stripe, Scale plan enquiries).
AVTRZ_SUPPORT_EMAIL = envstr("AVTRZ_SUPPORT_EMAIL", "support@avtrz.dev")
CELERY_BEAT_SCHEDULE |= {
    # Opens each workspace's new quota cycle on its anchor day and writes the last one's final count.
    "roll-usage-periods": {"task": "workspaces.tasks.roll_usage_periods", "schedule": 3600.0},
    # Rotated keys past their grace period: marked revoked and dropped from every worker's cache. (The
    # request path already refuses them at the expiry; this writes it down and broadcasts it.)
    "retire-rotated-keys": {"task": "workspaces.tasks.retire_rotated_keys", "schedule": 300.0},
}

# ---------------------------------------------------------------- billing (Stripe)
# Both set: paid plans are bought with Stripe Checkout and managed in Stripe's customer portal,
# each sold plan naming its price in Plan.stripe_price_id. Unset: plan changes go through support.
STRIPE_SECRET_KEY = envstr("STRIPE_SECRET_KEY")
STRIPE_WEBHOOK_SECRET = envstr("STRIPE_WEBHOOK_SECRET")

# ---------------------------------------------------------------- avatar engine
# Profile pages are {LINKEDIN_BASE_URL}/in/{handle}/; tests point it at a local fixture server.
LINKEDIN_BASE_URL = envstr("LINKEDIN_BASE_URL", "https://www.linkedin.com").rstrip("/")
LINKEDIN_HOST = urlsplit(LINKEDIN_BASE_URL).hostname or ""
# Hosts photos may be downloaded from (exact, or *.suffix).
AVTRZ_PHOTO_HOSTS = envlist("AVTRZ_PHOTO_HOSTS", "media.licdn.com,*.licdn.com")
# Hosts that may be fetched although they resolve to private or loopback addresses.
AVTRZ_FETCH_ALLOW_PRIVATE = envlist("AVTRZ_FETCH_ALLOW_PRIVATE")
AVTRZ_FETCH_CONNECT_TIMEOUT_S = envfloat("AVTRZ_FETCH_CONNECT_TIMEOUT_S", 3.0)
AVTRZ_FETCH_READ_TIMEOUT_S = envfloat("AVTRZ_FETCH_READ_TIMEOUT_S", 5.0)
# A photo downloaded by a Celery worker, off the request path, may take longer (a slow CDN is not a block).
AVTRZ_PHOTO_TASK_READ_TIMEOUT_S = envfloat("AVTRZ_PHOTO_TASK_READ_TIMEOUT_S", 20.0)
# After this many profile fetches in a row failed or were blocked, nothing is fetched for
# AVTRZ_UPSTREAM_BREAKER_OPEN_S seconds (avtrz.avatars.breaker).
AVTRZ_UPSTREAM_BREAKER_FAILURES = envint("AVTRZ_UPSTREAM_BREAKER_FAILURES", 5)
AVTRZ_UPSTREAM_BREAKER_OPEN_S = envint("AVTRZ_UPSTREAM_BREAKER_OPEN_S", 60)
# How long a request for an unknown profile waits for enrichment before answering with the monogram.
AVTRZ_ENRICH_WAIT_S = envfloat("AVTRZ_ENRICH_WAIT_S", 2.0)
# At most this many `/v1/avatar` requests that the fast path hands to Django run at once per process
# (each holds a thread and a database connection); more, a burst of cold ones, wait their turn.
AVTRZ_AVATAR_DJANGO_CONCURRENCY = envint("AVTRZ_AVATAR_DJANGO_CONCURRENCY", 16)
# MCP tool calls' sync work, off Django's one sync thread (mcpserver.lanes): threads for token checks
# and cached lookups, and at most this many lookups that query the database or wait for enrichment.
MCP_WARM_THREADS = envint("MCP_WARM_THREADS", 4)
MCP_COLD_LOOKUPS = envint("MCP_COLD_LOOKUPS", 8)
# Resolved profiles are re-checked at least this often, and before their photo URL expires.
AVTRZ_STALE_AFTER_DAYS = envint("AVTRZ_STALE_AFTER_DAYS", 14)
CELERY_BEAT_SCHEDULE |= {
    # Re-checks profiles whose photo URL is about to expire, stale, blocked earlier, or stuck.
    "refresh-due-profiles": {"task": "avtrz.avatars.tasks.refresh_due_profiles", "schedule": 300.0},
    # Removals whose stored files are not all deleted yet (storage was down past the task's retries).
    "retry-unfinished-purges": {"task": "avtrz.avatars.tasks.retry_unfinished_purges", "schedule": 900.0},
}
# Where durable image URLs point: the app itself by default, a CDN or bucket in production.
AVTRZ_IMAGE_BASE_URL = envstr("AVTRZ_IMAGE_BASE_URL", f"{PUBLIC_BASE_URL}/img/")

# ---------------------------------------------------------------- oauth
# The OAuth 2.1 authorization server for AI connectors (django-oauth-toolkit); see accounts/oauth.py.
# The PEM RSA key that signs ID tokens (OIDC_RSA_PRIVATE_KEY_FILE to mount it; "\n" escapes allowed).
OIDC_RSA_PRIVATE_KEY = envstr("OIDC_RSA_PRIVATE_KEY").replace("\\n", "\n")
if not OIDC_RSA_PRIVATE_KEY:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured(
            "Set OIDC_RSA_PRIVATE_KEY (or OIDC_RSA_PRIVATE_KEY_FILE) to the PEM key that signs ID tokens."
        )
    from accounts.oidc_key import development_key  # noqa: E402 (development only)

    OIDC_RSA_PRIVATE_KEY = development_key(BASE_DIR / "var" / "oidc-dev-key.pem")
if not (DEBUG or TESTING or os.environ.get("EMAIL_BACKEND") or os.environ.get("EMAIL_HOST")):
    raise ImproperlyConfigured(
        "No email backend while DEBUG is off: set EMAIL_HOST (and EMAIL_PORT, EMAIL_HOST_USER, "
        "EMAIL_HOST_PASSWORD, EMAIL_USE_TLS) for SMTP, or EMAIL_BACKEND. Without one, password reset "
        "links would be written to the logs."
    )
if not (DEBUG or TESTING) and EMAIL_BACKEND == "django.core.mail.backends.console.EmailBackend":
    raise ImproperlyConfigured(
        "EMAIL_BACKEND is the console backend while DEBUG is off: it would print whole mails, reset links "
        "included, into the logs, outside their JSON lines. Set EMAIL_HOST for SMTP, or use the file backend "
        "(django.core.mail.backends.filebased.EmailBackend with EMAIL_FILE_PATH)."
    )
OAUTH_ACCESS_TOKEN_SECONDS = envint("OAUTH_ACCESS_TOKEN_SECONDS", 3600)
# Refresh tokens die this long after their last access token expired (an idle timeout).
OAUTH_REFRESH_TOKEN_SECONDS = envint("OAUTH_REFRESH_TOKEN_SECONDS", 30 * 24 * 3600)
# Clients such as Claude refresh in parallel with one refresh token: for this long after rotating,
# it still answers with the tokens it was rotated into. A replay after that revokes the whole family.
OAUTH_REFRESH_GRACE_SECONDS = envint("OAUTH_REFRESH_GRACE_SECONDS", 30)
# Dynamic client registrations allowed per client address in OAUTH_REGISTRATION_RATE_WINDOW_S.
OAUTH_REGISTRATION_RATE_LIMIT = envint("OAUTH_REGISTRATION_RATE_LIMIT", 20)
OAUTH_REGISTRATION_RATE_WINDOW_S = envint("OAUTH_REGISTRATION_RATE_WINDOW_S", 3600)
# Failed client authentications (a wrong client secret) allowed per client and per client address in
# OAUTH_CLIENT_AUTH_FAILURE_WINDOW_S at the token, revocation and introspection endpoints; past either,
# those endpoints answer 429 without checking the secret until the window ends (accounts.client_auth).
OAUTH_CLIENT_AUTH_FAILURE_LIMIT = envint("OAUTH_CLIENT_AUTH_FAILURE_LIMIT", 10)
OAUTH_CLIENT_AUTH_FAILURE_ADDRESS_LIMIT = envint("OAUTH_CLIENT_AUTH_FAILURE_ADDRESS_LIMIT", 30)
OAUTH_CLIENT_AUTH_FAILURE_WINDOW_S = envint("OAUTH_CLIENT_AUTH_FAILURE_WINDOW_S", 300)
# Private-use redirect URI schemes of native clients (RFC 8252 §7.1), on top of http(s).
OAUTH_APP_SCHEMES = envlist("OAUTH_APP_SCHEMES", "cursor,vscode,vscode-insiders,windsurf")
# A PEM bundle to trust, instead of the default store, when fetching client metadata documents.
OAUTH_CIMD_CA_BUNDLE = envstr("OAUTH_CIMD_CA_BUNDLE")

# DOT's own models, not swapped; named because accounts' models point at them (a swappable
# model's references need the setting to exist, like AUTH_USER_MODEL).
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth2_provider.AccessToken"  # noqa: S105 (a model name)
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth2_provider.RefreshToken"  # noqa: S105 (a model name)
OAUTH2_PROVIDER = {
    "OAUTH2_VALIDATOR_CLASS": "accounts.oauth_validators.AvtrzOAuth2Validator",
    # One issuer string everywhere: both discovery documents, `iss` on redirects, ID tokens.
    "OIDC_ISS_ENDPOINT": PUBLIC_BASE_URL,
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": OIDC_RSA_PRIVATE_KEY,
    # prompt=create (OpenID Connect Prompt Create 1.0): a new person goes to the sign-up page and
    # comes back to the consent screen (accounts.oauth_views.ConsentView.handle_prompt_create).
    "OIDC_RP_INITIATED_REGISTRATION_ENABLED": True,
    "OIDC_RP_INITIATED_REGISTRATION_URL": "accounts:signup",
    "SCOPES": {
        "openid": "Confirm who you are",
        "profile": "See your name",
        "email": "See your email address",
        "offline_access": "Stay connected without asking you again",
    },
    "DEFAULT_SCOPES": ["openid"],
    "OAUTH2_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OIDC_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OAUTH2_GRANT_TYPES_SUPPORTED": ["authorization_code", "refresh_token"],
    "OAUTH2_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": ["none", "client_secret_basic", "client_secret_post"],
    "OIDC_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": ["none", "client_secret_basic", "client_secret_post"],
    # OAuth 2.1 / RFC 9700: PKCE with S256 only, `iss` on authorization responses, no implicit or
    # password grant, no tokens in query strings, exact redirect URIs, refresh token reuse detection.
    "PKCE_REQUIRED": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    # Access and refresh tokens are stored as SHA-256 digests only; a database leak hands out no
    # working credential.
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "ACCESS_TOKEN_EXPIRE_SECONDS": OAUTH_ACCESS_TOKEN_SECONDS,
    "ID_TOKEN_EXPIRE_SECONDS": OAUTH_ACCESS_TOKEN_SECONDS,
    "REFRESH_TOKEN_EXPIRE_SECONDS": OAUTH_REFRESH_TOKEN_SECONDS,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": OAUTH_REFRESH_GRACE_SECONDS,
    # http stays for loopback callbacks only, which accounts.oauth enforces at registration.
    "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https", *OAUTH_APP_SCHEMES],
    "ALLOW_LOCALHOST_LOOPBACK": True,
    "DCR_ENABLED": True,
    "DCR_REGISTRATION_PERMISSION_CLASSES": ("oauth2_provider.dcr.AllowAllDCRPermission",),
    "CIMD_ENABLED": True,
    "CIMD_METADATA_FETCHER": "accounts.cimd.SafeHTTPMetadataFetcher",
    "OAUTH2_PROTECTED_RESOURCE_IDENTIFIER": f"{PUBLIC_BASE_URL}/mcp",
    "OAUTH2_PROTECTED_RESOURCE_AUTHORIZATION_SERVERS": [PUBLIC_BASE_URL],
    "OAUTH2_PROTECTED_RESOURCE_NAME": "Avtrz",
    "CLIENT_SECRET_HASHER": "avtrz_hmac_sha256",
}
SILENCED_SYSTEM_CHECKS = [
    # DOT refuses a refresh grace period with hashed token storage, because its grace hands back
    # the pair a rotation issued, in clear. Ours issues a new pair in the same family instead
    # (accounts.oauth_validators), which needs no plaintext.
    "oauth2_provider.E001",
    # http redirect URIs are allowed for loopback hosts only (RFC 8252 §7.3), enforced at registration.
    "oauth2_provider.W008",
]

# Browser-based MCP clients call discovery, token, registration and revocation cross-origin,
# without cookies, so any origin may; nothing else on the site answers CORS.
CORS_URLS_REGEX = r"^/(\.well-known/.*|o/(token|register|revoke_token|introspect|userinfo)/.*|token|register)$"
CORS_ALLOW_ALL_ORIGINS = True
CORS_ALLOW_HEADERS = ["accept", "authorization", "content-type", "mcp-protocol-version"]

CELERY_BEAT_SCHEDULE |= {
    "clear-expired-oauth-tokens": {"task": "accounts.tasks.clear_expired_tokens", "schedule": 3600.0},
    "clear-abandoned-oauth-registrations": {
        "task": "accounts.tasks.clear_abandoned_registrations",
        "schedule": 6 * 3600.0,
    },
}
