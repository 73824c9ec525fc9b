"""Access levels and what each one allows: the one table every enforcement point reads.

`view_only` < `download` < `annotate` < `report` < `share` < `full`; a higher level includes
every lower one. docs/access-levels.md shows the same table for people.
"""

from __future__ import annotations

import enum

from plugin.policies.types import Action


class AccessLevel(enum.IntEnum):
    VIEW_ONLY = 1
    DOWNLOAD = 2
    ANNOTATE = 3
    REPORT = 4
    SHARE = 5
    FULL = 6

    @property
    def label(self) -> str:
        return self.name.lower()


LEVEL_NAMES = tuple(level.label for level in AccessLevel)


def parse_level(name: str) -> AccessLevel | None:
    """The level called `name` (e.g. "download"), or None when there is no such level."""
    try:
        return AccessLevel[name.upper()] if isinstance(name, str) and name.lower() == name else None
    except KeyError:
        return None


# Action -> the lowest level that allows it on a granted patient or study. ADMIN and PUBLIC are
# not here: admin-only routes need the admin role whatever the grants, public ones need nothing.
REQUIRED_LEVEL: dict[Action, AccessLevel] = {
    # metadata, tags, rendered/preview images, viewer frames, DICOMweb metadata/rendered/frames
    Action.LIST: AccessLevel.VIEW_ONLY,
    Action.VIEW: AccessLevel.VIEW_ONLY,
    # original DICOM: /file, /archive, /media, WADO-URI application/dicom, DICOMweb retrieve,
    # create-archive/create-media of granted studies
    Action.DOWNLOAD: AccessLevel.DOWNLOAD,
    # storing annotations or key images in the study (metadata, labels, STOW into the study)
    Action.ANNOTATE: AccessLevel.ANNOTATE,
    # attaching a report to the study (attachments)
    Action.REPORT: AccessLevel.REPORT,
    # creating a patient share link for the study (shares API)
    Action.SHARE: AccessLevel.SHARE,
    # modify, anonymize, delete of the study
    Action.MODIFY: AccessLevel.FULL,
    Action.DELETE: AccessLevel.FULL,
}
