"""Every request has one effect: claims under a unique key, in the database.

A retried delivery, a double submit or a second instance handling the same request find
the first one's claim and do nothing again (DESIGN.md, invariant 4). Two kinds of use:

- inside an action's own transaction (`_repeated` … `_answered`): the key is stored with the
  change, atomically, so the change and "this request was done" commit together, and a retry
  gets the first answer again;
- around work outside the database (`claim_request` … `finish_request`): a claim with a lease,
  "running" while its holder works and "done" afterwards; a claim whose lease ran out (its
  holder died) may be taken over.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.models import Incident, RequestClaim

CLAIM_LEASE = timedelta(seconds=60)
KEEP_DONE = timedelta(days=2)  # Slack retries within minutes; a day's margin is plenty


@dataclass(frozen=True)
class Claim:
    state: str  # "mine": go ahead · "busy": another holds it now · "done": it was done before
    result: dict | None = None


class Once:
    @cached_property
    def worker(self) -> str:
        """Who holds a claim or an opening: this process (and this core in it)."""
        return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:80]

    # -- around work outside the database ------------------------------------------------------

    def claim_request(self, workspace: str, key: str, lease: timedelta = CLAIM_LEASE) -> Claim:
        now = self.clock()
        for _ in range(3):
            try:
                with self.db.transaction() as s:
                    row = s.scalar(select(RequestClaim).where(
                        RequestClaim.workspace_id == workspace, RequestClaim.key == key).with_for_update())
                    if row is None:
                        s.add(RequestClaim(workspace_id=workspace, key=key, state="running", claimed_by=self.worker,
                                           lease_until=now + lease, created_at=now))
                        s.flush()
                        return Claim("mine")
                    if row.state == "done":
                        return Claim("done", row.result)
                    if row.lease_until is not None and row.lease_until > now:
                        return Claim("busy")
                    row.claimed_by, row.lease_until = self.worker, now + lease  # its holder died: take over
                    return Claim("mine")
            except IntegrityError:
                continue  # another request inserted the same key at the same moment; look again
        return Claim("busy")

    def finish_request(self, workspace: str, key: str, result: dict | None = None, *, keep: bool = True) -> None:
        """Done (kept, so a retry finds it) or given up (removed, so trying again works)."""
        with self.db.transaction() as s:
            row = s.scalar(select(RequestClaim).where(
                RequestClaim.workspace_id == workspace, RequestClaim.key == key).with_for_update())
            if row is None or (row.state == "running" and row.claimed_by != self.worker):
                return  # taken over by another after our lease ran out: theirs now
            if keep:
                row.state, row.result, row.lease_until = "done", result, None
            else:
                s.delete(row)

    def forget_requests(self) -> int:
        """Old claims are no longer needed: no retry comes days later."""
        now = self.clock()
        with self.db.transaction() as s:
            return s.execute(delete(RequestClaim).where(
                RequestClaim.created_at < now - KEEP_DONE,
                or_(RequestClaim.state == "done", RequestClaim.lease_until < now))).rowcount or 0

    # -- inside an action's transaction -----------------------------------------------------------

    def _repeated(self, s: Session, incident: Incident, key: str | None):
        """None: go ahead, and say what was answered with `_answered`. Otherwise the request was
        done before, and the Outcome repeats its answer privately, with nothing to post again."""
        if not key:
            return None
        where = (RequestClaim.workspace_id == incident.workspace_id, RequestClaim.key == key[:200])
        earlier = s.scalar(select(RequestClaim).where(*where))
        if earlier is None:
            try:
                with s.begin_nested():
                    s.add(RequestClaim(workspace_id=incident.workspace_id, key=key[:200], state="done",
                                       created_at=self.clock()))
                return None
            except IntegrityError:  # the same request committed a moment ago on another instance
                earlier = s.scalar(select(RequestClaim).where(*where).execution_options(populate_existing=True))
        result = (earlier.result if earlier is not None else None) or {"text": "request_repeated", "values": {}}
        return self._outcome(incident, private=self.say(result["text"], incident.language, **result["values"]))

    def _answered(self, s: Session, incident: Incident, key: str | None, text: str, /, **values) -> None:
        if key:
            row = s.scalar(select(RequestClaim).where(
                RequestClaim.workspace_id == incident.workspace_id, RequestClaim.key == key[:200]))
            if row is not None:
                row.result = {"text": text, "values": values}
