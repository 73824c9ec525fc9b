"""GrantSet: the level a caller's grants give on a patient or a study at an instant, and until when."""

from __future__ import annotations

from plugin.policies.grants import NEVER, NOTHING, GrantSet, GrantTerm, Held
from plugin.policies.levels import AccessLevel

V, D, N, R, S, F = (AccessLevel.VIEW_ONLY, AccessLevel.DOWNLOAD, AccessLevel.ANNOTATE, AccessLevel.REPORT,
                    AccessLevel.SHARE, AccessLevel.FULL)
T = 1_000.0
PID, OTHER_PID = "PAT-1", "PAT-2"
STUDY, OTHER_STUDY = "1.2.3", "1.2.4"


def grants(patients=(), studies=()) -> GrantSet:
    return GrantSet.of(patients, studies)


# -- nothing held ---------------------------------------------------------------------------------


def test_an_empty_set_holds_nothing_and_is_falsy():
    empty = GrantSet()
    assert not empty
    assert empty.on_patient(PID, T) == NOTHING
    assert empty.on_study(PID, STUDY, T) == NOTHING
    assert NOTHING == Held(None, NEVER)


def test_a_set_with_a_grant_is_truthy():
    assert grants(studies=[(STUDY, GrantTerm(V))])


def test_a_grant_on_someone_else_holds_nothing():
    held = grants([(OTHER_PID, GrantTerm(F))], [(OTHER_STUDY, GrantTerm(F))])
    assert held.on_patient(PID, T) == NOTHING
    assert held.on_study(PID, STUDY, T) == NOTHING


# -- best level -----------------------------------------------------------------------------------


def test_the_best_of_several_grants_on_one_key_is_held():
    held = grants(studies=[(STUDY, GrantTerm(V)), (STUDY, GrantTerm(R)), (STUDY, GrantTerm(D))])
    assert held.on_study(PID, STUDY, T) == Held(R, NEVER)


def test_the_order_grants_are_given_in_does_not_matter():
    terms = [GrantTerm(D, T + 10), GrantTerm(F, T + 5), GrantTerm(V)]
    assert grants(studies=[(STUDY, t) for t in terms]).studies == \
        grants(studies=[(STUDY, t) for t in reversed(terms)]).studies


def test_the_better_of_patient_and_study_grants_is_held_on_a_study():
    held = grants([(PID, GrantTerm(D))], [(STUDY, GrantTerm(N))])
    assert held.on_study(PID, STUDY, T).level is N
    held = grants([(PID, GrantTerm(F))], [(STUDY, GrantTerm(V))])
    assert held.on_study(PID, STUDY, T).level is F


# -- patients and studies -------------------------------------------------------------------------


def test_a_patient_grant_covers_any_study_of_the_patient():
    held = grants(patients=[(PID, GrantTerm(D))])
    assert held.on_study(PID, STUDY, T) == Held(D, NEVER)
    assert held.on_study(PID, "9.9.9.stored.later", T) == Held(D, NEVER)
    assert held.on_patient(PID, T) == Held(D, NEVER)


def test_a_patient_grant_does_not_cover_another_patients_study():
    assert grants(patients=[(PID, GrantTerm(F))]).on_study(OTHER_PID, STUDY, T) == NOTHING


def test_a_study_grant_does_not_cover_the_patient_resource():
    held = grants(studies=[(STUDY, GrantTerm(F))])
    assert held.on_study(PID, STUDY, T) == Held(F, NEVER)
    assert held.on_patient(PID, T) == NOTHING


def test_a_study_grant_does_not_open_the_patients_other_studies():
    assert grants(studies=[(STUDY, GrantTerm(F))]).on_study(PID, OTHER_STUDY, T) == NOTHING


def test_granted_keys_are_listed_while_unexpired():
    held = grants([(PID, GrantTerm(V, T + 1)), (OTHER_PID, GrantTerm(V, T))],
                  [(STUDY, GrantTerm(V)), (OTHER_STUDY, GrantTerm(V, T - 1))])
    assert held.patient_ids(T) == {PID}
    assert held.study_uids(T) == {STUDY}
    assert held.patient_ids(T + 1) == set()


# -- expiry ---------------------------------------------------------------------------------------


def test_a_grant_is_held_until_the_instant_before_its_expiry_and_not_at_it():
    held = grants(studies=[(STUDY, GrantTerm(D, T))])
    assert held.on_study(PID, STUDY, T - 0.001) == Held(D, T)
    assert held.on_study(PID, STUDY, T) == NOTHING
    assert held.on_study(PID, STUDY, T + 1) == NOTHING


def test_a_patient_grant_expires_at_the_exact_instant_too():
    held = grants(patients=[(PID, GrantTerm(V, T))])
    assert held.on_patient(PID, T - 0.001).level is V
    assert held.on_patient(PID, T) == NOTHING
    assert held.on_study(PID, STUDY, T) == NOTHING


def test_until_of_a_grant_without_expiry_is_never():
    assert grants(studies=[(STUDY, GrantTerm(V))]).on_study(PID, STUDY, T).until == NEVER


def test_when_the_best_grant_expires_the_next_best_takes_over():
    held = grants(studies=[(STUDY, GrantTerm(F, T + 10)), (STUDY, GrantTerm(V, T + 20))])
    assert held.on_study(PID, STUDY, T) == Held(F, T + 10)  # re-checked at T+10, when F ends
    assert held.on_study(PID, STUDY, T + 10) == Held(V, T + 20)
    assert held.on_study(PID, STUDY, T + 20) == NOTHING


def test_of_two_grants_at_one_level_the_later_expiry_counts():
    held = grants(studies=[(STUDY, GrantTerm(D, T + 5)), (STUDY, GrantTerm(D, T + 50)), (STUDY, GrantTerm(D, T + 9))])
    assert held.on_study(PID, STUDY, T) == Held(D, T + 50)


def test_equal_patient_and_study_levels_hold_until_the_later_expiry():
    held = grants([(PID, GrantTerm(D, T + 5))], [(STUDY, GrantTerm(D, T + 50))])
    assert held.on_study(PID, STUDY, T) == Held(D, T + 50)
    held = grants([(PID, GrantTerm(D))], [(STUDY, GrantTerm(D, T + 50))])
    assert held.on_study(PID, STUDY, T) == Held(D, NEVER)


def test_a_higher_level_holds_only_until_its_own_expiry():
    # The decision it allowed may change then (a lower grant takes over), so that is when to re-check.
    held = grants([(PID, GrantTerm(V))], [(STUDY, GrantTerm(F, T + 5))])
    assert held.on_study(PID, STUDY, T) == Held(F, T + 5)
    assert held.on_study(PID, STUDY, T + 5) == Held(V, NEVER)


def test_an_expired_grant_beside_a_live_one_is_ignored():
    held = grants(studies=[(STUDY, GrantTerm(F, T - 1)), (STUDY, GrantTerm(V))])
    assert held.on_study(PID, STUDY, T) == Held(V, NEVER)
