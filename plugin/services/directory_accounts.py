"""Directory accounts re-read from the directory, so that leavers lose access within a bound.

Roles are copied from the directory at each sign-in; a session or an API key then acts without
asking the directory again. So every enabled directory account that still has an open session or
a live API key is re-read at least every RecheckSeconds (a background sweep, every
min(RecheckSeconds / 2, 60 s)): an entry that is gone, or in no mapped group any more, loses its
sessions and API keys at once; changed roles end its sessions. If the directory cannot be reached,
nothing is changed, and the Authenticator refuses an account not re-read for twice RecheckSeconds.

Rows made before accounts were keyed by entry (one per typed spelling) are settled here too: the
one named as the entry names itself is adopted, every other spelling is retired (disabled, its
sessions and keys ended).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from plugin.identity.authenticate import Authenticator
from plugin.identity.directory import Directory, DirectoryAccount, DirectoryUnavailable
from plugin.services.accounts import AuditSink, account_event
from plugin.services.periodic import Periodic
from plugin.store import accounts
from plugin.store.db import Store
from plugin.store.models import User

ACTOR = "directory re-check"


class DirectoryRecheck:
    def __init__(self, store: Store, directory: Directory, authenticator: Authenticator, audit: AuditSink,
                 recheck_seconds: float, clock: Callable[[], float] = time.time,
                 warn: Callable[[str], None] = lambda _m: None) -> None:
        self._store = store
        self._directory = directory
        self._auth = authenticator
        self._audit = audit
        self._recheck = recheck_seconds
        self._clock = clock
        self._warn = warn
        self._sweeper = Periodic("gate-directory-recheck", min(recheck_seconds / 2, 60.0), self.sweep,
                                 "directory re-check", warn)

    def sweep(self) -> int:
        """Re-read every account due; returns how many were re-read. Stops at the first sign that
        the directory is unavailable (nothing is changed then)."""
        now = self._clock()
        with self._store.read() as db:
            due = accounts.directory_users_to_recheck(db, now - self._recheck, now)
        done = 0
        for user in due:
            try:
                found = self._directory.lookup(user.directory_id) if user.directory_id \
                    else self._directory.find(user.username)
            except DirectoryUnavailable as exc:
                self._warn(f"Gate: directory accounts could not be re-checked ({exc})")
                break
            self._settle(user, found, self._clock())
            done += 1
        if done:
            self._auth.invalidate()
        return done

    def _settle(self, user: User, found: DirectoryAccount | None, now: float) -> None:
        if found is None:
            self._end_access(user, now, "no longer in the directory")
            return
        if user.directory_id is None:
            with self._store.read() as db:
                taken = accounts.user_by_directory_id(db, found.entry_id)
            if taken is not None or found.login != user.username:
                self._retire(user, now, "a second account of one directory entry")
                return
        before = user.role_set
        saved = self._auth.save_directory_account(found, now)
        if saved is None:
            self._retire(user, now, "a local account has the directory entry's name")
        elif not saved.role_set:
            self._end_access(saved, now, "in no mapped group any more")
        elif saved.role_set != before:
            with self._store.transaction() as db:
                ended = accounts.revoke_user_sessions(db, saved.id, now)
            self._audit(account_event(now, ACTOR, "user.recheck", "success",
                                      f"roles of {saved.username} now {','.join(sorted(saved.role_set))}; "
                                      f"{ended} session(s) ended"))

    def _end_access(self, user: User, now: float, why: str) -> None:
        with self._store.transaction() as db:
            row = accounts.user_by_id(db, user.id)
            row.roles, row.directory_checked_at, row.updated_at = "", now, now
            sessions = accounts.revoke_user_sessions(db, user.id, now)
            keys = accounts.revoke_user_api_keys(db, user.id, now)
        self._audit(account_event(now, ACTOR, "user.recheck", "success",
                                  f"{user.username} {why}: {sessions} session(s) and {keys} API key(s) ended"))

    def _retire(self, user: User, now: float, why: str) -> None:
        with self._store.transaction() as db:
            accounts.retire_user(db, accounts.user_by_id(db, user.id), f"{user.username}~{user.id}", now)
        self._audit(account_event(now, ACTOR, "user.recheck", "success",
                                  f"{user.username}: {why}, retired (disabled, its sessions and API keys ended)"))

    # -- the background sweep ----------------------------------------------------------------------

    def start(self) -> None:
        self._sweeper.start()

    def stop(self) -> None:
        self._sweeper.stop(timeout=10)
