"""What a caller who is not an admin may store: objects of the patient and study they were granted.

Orthanc files an uploaded object under the patient its PatientID names and the study its
StudyInstanceUID names, whatever study the upload was addressed to. So an object stored through a
grant (STOW-RS into a granted study, at `annotate`) must carry that study's UID and that study's
patient's PatientID, or it is refused.
"""

from __future__ import annotations

from plugin.policies.types import Action, Decision, RouteInfo

Identity = tuple[str, str]  # (PatientID, StudyInstanceUID) exactly as the object carries them


def stores_objects(route: RouteInfo) -> bool:
    """Does this request, once allowed on a grant, store DICOM objects (STOW-RS into a study)?"""
    return route.family == "dicomweb" and route.method == "POST" and route.action is Action.ANNOTATE


def upload_decision(allowed: frozenset[Identity], carried: Identity | None) -> Decision:
    if carried is None:
        return Decision.deny("upload refused: the object's PatientID and StudyInstanceUID could not be read")
    if carried in allowed:
        return Decision.allow("upload into the granted study")
    patient_id, study_uid = carried
    if study_uid not in {uid for _, uid in allowed}:
        return Decision.deny(f"upload refused: the object belongs to study {study_uid[:64]!r}, "
                             "not the study it was sent to")
    return Decision.deny(f"upload refused: the object's PatientID {patient_id[:64]!r} is not the patient "
                         "of the study it was sent to")
