"""Orthanc Explorer 2 in front of the Gate: its configuration document per caller
(policies/explorer2.py decides what it holds), from Orthanc's configuration and the plugins loaded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from plugin.policies.explorer2 import ROOT, Explorer2Caller, configuration, plugins_part
from plugin.policies.types import Principal
from plugin.services.access import AccessService
from plugin.services.core import Core, CoreError
from plugin.store import accounts as account_store
from plugin.store.db import Store

PLUGIN_NAME = "orthanc-explorer-2"
# A doctor's OE2 has no use for the DICOMweb plugin's own entry (remote DICOMweb servers and the
# Weasis button, admin matters): without it OE2 does not ask for /dicom-web/servers.
ADMIN_ONLY_PLUGINS = frozenset({"dicom-web"})


class Explorer2:
    def __init__(self, orthanc_config: Mapping[str, Any], core: Core, store: Store, access: AccessService,
                 shares_enabled: bool) -> None:
        section = orthanc_config.get("OrthancExplorer2")
        self._section: Mapping[str, Any] = section if isinstance(section, dict) else {}
        self._orthanc_config = orthanc_config
        self._core = core
        self._store = store
        self._access = access
        self._shares_enabled = shares_enabled
        self._plugins: dict[str, Any] | None = None  # read once: plugins are loaded at start-up only

    def loaded(self) -> bool:
        """Whether OE2 is loaded and enabled (its section's "Enable", true unless set otherwise) at
        the root the Gate's routes are written for (`/ui/`, OE2's default)."""
        return self._section.get("Enable", True) is not False and self._section.get("Root", ROOT) == ROOT \
            and PLUGIN_NAME in self._plugin_infos()

    def document(self, principal: Principal, now: float) -> dict[str, Any]:
        """`/ui/api/configuration` for `principal` (signed in, owing nothing)."""
        username = principal.username or ""
        with self._store.read() as db:
            user = account_store.user_by_name(db, username)
        best = None if principal.is_admin else self._access.grants_of(username).best_level(now)
        caller = Explorer2Caller(username=username, display_name=user.display_name if user else "",
                                 admin=principal.is_admin, best_level=best,
                                 local_password=user is not None and user.source == "local",
                                 shares_enabled=self._shares_enabled)
        plugins = plugins_part(self._plugin_infos(), self._orthanc_config)
        if not principal.is_admin:
            plugins = {name: info for name, info in plugins.items() if name not in ADMIN_ONLY_PLUGINS}
        return configuration(self._section, plugins, caller, read_only=self._orthanc_config.get("ReadOnly") is True)

    def _plugin_infos(self) -> dict[str, Any]:
        if self._plugins is None:
            infos: dict[str, Any] = {}
            try:
                for name in self._core.get("/plugins"):
                    if isinstance(name, str) and name != "explorer.js":
                        infos[name] = self._core.get(f"/plugins/{quote(name, safe='')}")
            except CoreError:
                return {}  # asked again next time
            self._plugins = infos
        return self._plugins
