"""REST handlers of the ``runs`` service (``/services/runs/api/...``).

Callers authenticate with a JupyterHub API token in the ``Authorization``
header (``HubAuthenticated``; a token in the URL is refused). Users see and
manage only their own runs and schedules — another user's are 404, as if
they did not exist; admins see all. Bodies are validated where they arrive
and bad input is a 400 that changes nothing. Errors are
``{"error": <message>, "status": <code>}``.
"""

from __future__ import annotations

import json

from jupyterhub.services.auth import HubAuthenticated
from tornado import web

from labdeck.hub.service import JSONErrorsMixin, TokenAuthMixin, json_body
from . import cron as cronlib
from .params import InvalidParameters, validate_parameters
from .paths import InvalidPath, is_run_id, validate_notebook_path
from .records import ACTIVE, validate_meta, validate_profile
from .scheduler import LimitExceeded

_SCHEDULE_FIELDS = {"notebook", "parameters", "profile", "cron", "timeout", "enabled", "staged_input", "meta"}
_RUN_FIELDS = {"notebook", "parameters", "profile", "timeout", "staged_input", "meta"}
_SCHEDULE_EDITS = {"enabled", "cron", "notebook", "parameters", "profile", "timeout", "staged_input", "meta"}


class APIHandler(TokenAuthMixin, JSONErrorsMixin, HubAuthenticated, web.RequestHandler):
    """JSON in and out, hub-token authentication, owner checks."""

    @property
    def app(self):
        return self.settings["runs_app"]

    @property
    def scheduler(self):
        return self.app.scheduler

    def set_default_headers(self):
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")

    def check_xsrf_cookie(self):
        # token-authenticated API: no cookies are accepted, so no XSRF to check
        return

    def get_login_url(self):
        # an API has no login page: refuse instead of redirecting
        if self.api_token(required=False) is None:
            raise web.HTTPError(401, "Missing Authorization header (expected 'token <JupyterHub API token>')")
        if getattr(self, "_cached_hub_user", None):  # the hub knows the token; its owner may not use this service
            raise web.HTTPError(403, "This token may not use the runs service")
        raise web.HTTPError(401, "Invalid or expired JupyterHub API token")

    service_label = "runs service"

    @property
    def service_log(self):
        return self.app.log

    @property
    def user_name(self) -> str:
        user = self.current_user
        if not user or user.get("kind", "user") != "user":
            raise web.HTTPError(403, "Only users can use the runs API")
        return user["name"]

    @property
    def is_admin(self) -> bool:
        return bool(self.current_user.get("admin"))

    def body(self, allowed: set) -> dict:
        return json_body(self.request, allowed)

    def common(self, data: dict) -> tuple:
        try:
            notebook = validate_notebook_path(data.get("notebook"))
            parameters = validate_parameters(data.get("parameters"))
            profile = validate_profile(data.get("profile"))
        except (InvalidPath, InvalidParameters, ValueError) as e:
            raise web.HTTPError(400, str(e)) from None
        timeout = self.timeout(data.get("timeout", self.app.default_timeout))
        return notebook, parameters, profile, timeout

    def timeout(self, timeout) -> int:
        if isinstance(timeout, bool) or not isinstance(timeout, int) or not (1 <= timeout <= self.app.max_timeout):
            raise web.HTTPError(400, f"timeout must be an integer number of seconds between 1 and {self.app.max_timeout}")
        return timeout

    def extras(self, data: dict) -> dict:
        """``staged_input`` (a notebook key in the caller's S3 home) and ``meta`` (opaque client labels)."""
        out = {}
        try:
            if "staged_input" in data:
                out["staged_input"] = None if data["staged_input"] is None else validate_notebook_path(data["staged_input"])
            if "meta" in data:
                out["meta"] = validate_meta(data["meta"])
        except (InvalidPath, ValueError) as e:
            raise web.HTTPError(400, f"staged_input/meta: {e}") from None
        return out

    def visible(self, owner: str) -> bool:
        return owner == self.user_name or self.is_admin

    def owner_filter(self) -> str | None:
        asked = self.get_argument("user", None)
        if self.is_admin:
            return asked
        if asked not in (None, self.user_name):
            raise web.HTTPError(403, "You can only list your own runs and schedules")
        return self.user_name


class RunsHandler(APIHandler):
    @web.authenticated
    def get(self):
        owner = self.owner_filter()
        try:
            limit = max(1, min(500, int(self.get_argument("limit", "100"))))
        except ValueError:
            raise web.HTTPError(400, "limit must be an integer") from None
        sched = self.get_argument("schedule", None)
        runs = self.scheduler.store.list_runs(owner=owner, limit=limit, schedule_id=sched)
        self.finish(json.dumps({"runs": [r.to_api() for r in runs]}))

    @web.authenticated
    def post(self):
        data = self.body(_RUN_FIELDS)
        notebook, parameters, profile, timeout = self.common(data)
        try:
            run = self.scheduler.submit(self.user_name, notebook, parameters, profile, timeout, **self.extras(data))
        except LimitExceeded as e:
            raise web.HTTPError(429, str(e)) from None
        self.set_status(201)
        self.finish(json.dumps(run.to_api()))


class RunHandler(APIHandler):
    def _run(self, run_id):
        run = self.scheduler.store.get_run(run_id) if is_run_id(run_id) else None
        if run is None or run.deleted is not None or not self.visible(run.owner):
            raise web.HTTPError(404, "No such run")
        return run

    @web.authenticated
    def get(self, run_id):
        self.finish(json.dumps(self._run(run_id).to_api()))

    @web.authenticated
    def delete(self, run_id):
        """Forget a finished run's record; its output notebook in S3 is immutable and stays."""
        run = self._run(run_id)
        if run.status in ACTIVE:
            raise web.HTTPError(409, f"Run {run.id} is {run.status}; only finished runs can be deleted")
        self.scheduler.store.delete_run(run.id, self.scheduler.clock())
        self.set_status(204)
        self.finish()


class SchedulesHandler(APIHandler):
    @web.authenticated
    def get(self):
        owner = self.owner_filter()
        items = self.scheduler.store.list_schedules(owner=owner)
        self.finish(json.dumps({"schedules": [s.to_api(self.scheduler.next_fire(s)) for s in items]}))

    @web.authenticated
    def post(self):
        data = self.body(_SCHEDULE_FIELDS)
        notebook, parameters, profile, timeout = self.common(data)
        try:
            expr = cronlib.validate_cron(data.get("cron"))
        except cronlib.InvalidCron as e:
            raise web.HTTPError(400, str(e)) from None
        mine = self.scheduler.store.list_schedules(owner=self.user_name)
        if len(mine) >= self.app.max_schedules_per_user:
            raise web.HTTPError(429, f"at most {self.app.max_schedules_per_user} schedules per user")
        sched = self.scheduler.add_schedule(self.user_name, notebook, parameters, profile, expr, timeout, **self.extras(data))
        if data.get("enabled") is False:
            self.scheduler.store.update_schedule(sched.id, enabled=False)
            sched.enabled = False
        self.set_status(201)
        self.finish(json.dumps(sched.to_api(self.scheduler.next_fire(sched))))


class ScheduleHandler(APIHandler):
    def _sched(self, sched_id):
        sched = self.scheduler.store.get_schedule(sched_id) if is_run_id(sched_id) else None
        if sched is None or not self.visible(sched.owner):
            raise web.HTTPError(404, "No such schedule")
        return sched

    @web.authenticated
    def get(self, sched_id):
        sched = self._sched(sched_id)
        self.finish(json.dumps(sched.to_api(self.scheduler.next_fire(sched))))

    @web.authenticated
    def patch(self, sched_id):
        sched = self._sched(sched_id)
        data = self.body(_SCHEDULE_EDITS)
        fields = self.extras(data)
        try:
            if "notebook" in data:
                fields["notebook"] = validate_notebook_path(data["notebook"])
            if "parameters" in data:
                fields["parameters"] = validate_parameters(data["parameters"])
            if "profile" in data:
                fields["profile"] = validate_profile(data["profile"])
        except (InvalidPath, InvalidParameters, ValueError) as e:
            raise web.HTTPError(400, str(e)) from None
        if "timeout" in data:
            fields["timeout"] = self.timeout(data["timeout"])
        if "enabled" in data:
            if not isinstance(data["enabled"], bool):
                raise web.HTTPError(400, "enabled must be true or false")
            fields["enabled"] = data["enabled"]
        if "cron" in data:
            try:
                fields["cron"] = cronlib.validate_cron(data["cron"])
            except cronlib.InvalidCron as e:
                raise web.HTTPError(400, str(e)) from None
        if fields:
            self.scheduler.store.update_schedule(sched.id, **fields)
        sched = self.scheduler.store.get_schedule(sched.id)
        self.finish(json.dumps(sched.to_api(self.scheduler.next_fire(sched))))

    @web.authenticated
    def delete(self, sched_id):
        sched = self._sched(sched_id)
        self.scheduler.store.delete_schedule(sched.id)
        self.set_status(204)
        self.finish()


class ScheduleRunsHandler(ScheduleHandler):
    """``POST api/schedules/<id>/runs``: run a schedule now (``{"parameters": {...}}`` overrides its own)."""

    @web.authenticated
    def post(self, sched_id):
        sched = self._sched(sched_id)
        data = self.body({"parameters"})
        try:
            parameters = validate_parameters(data.get("parameters"))
        except InvalidParameters as e:
            raise web.HTTPError(400, str(e)) from None
        try:
            run = self.scheduler.fire_now(sched, parameters)
        except LimitExceeded as e:
            raise web.HTTPError(429, str(e)) from None
        self.set_status(201)
        self.finish(json.dumps(run.to_api()))


