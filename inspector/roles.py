"""Who may do what at the station: roles, actions, and the one role x action table.

Least privilege (21 CFR 11.10(d), (g); EU GMP Annex 11 §12):

- **operator** runs batches, acknowledges alarms and reviews rejects at the line;
- **engineer** authors models, recipes and labels (the retraining loop), and runs batches to
  try them;
- **qa** reviews and approves (signs) models and recipes, runs qualification, and may do
  what an operator does;
- **admin** manages user accounts and station settings and reads the audit trail, but makes
  no GMP decision: an admin cannot review, approve or sign a release, nor judge a reject.

The HMI enables its controls from this table and the records layer refuses what it forbids;
a test walks every cell. Each e-signature meaning needs its own action.
"""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    OPERATOR = "operator"
    ENGINEER = "engineer"
    QA = "qa"
    ADMIN = "admin"


class Action(enum.StrEnum):
    RUN_BATCH = "run_batch"
    ACK_ALARM = "ack_alarm"
    REVIEW_REJECT = "review_reject"
    AUTHOR_MODEL = "author_model"
    AUTHOR_RECIPE = "author_recipe"
    LABEL_IMAGES = "label_images"
    REVIEW_RELEASE = "review_release"  # sign "reviewed" on a model or recipe
    APPROVE_RELEASE = "approve_release"  # sign "approved" (released for production) or "rejected"
    RETIRE_RELEASE = "retire_release"
    SIGN_REPORT = "sign_report"  # qualification and batch reports
    AUTHOR_SUITE = "author_suite"  # a qualification suite (its criteria) before it is approved
    RUN_QUALIFICATION = "run_qualification"
    MANAGE_USERS = "manage_users"
    CHANGE_SETTINGS = "change_settings"
    READ_AUDIT = "read_audit"
    EXPORT_RECORDS = "export_records"
    SITE_INTERVENE = "site_intervene"  # resume a station's halted forwarding, acknowledge a site alarm


class Meaning(enum.StrEnum):
    """What an electronic signature means (21 CFR 11.50(a)(3))."""

    AUTHORED = "authored"
    REVIEWED = "reviewed"
    APPROVED = "approved"
    RELEASED = "released"
    REJECTED = "rejected"


A = Action
PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.OPERATOR: frozenset({A.RUN_BATCH, A.ACK_ALARM, A.REVIEW_REJECT}),
    Role.ENGINEER: frozenset(
        {
            A.RUN_BATCH,
            A.ACK_ALARM,
            A.REVIEW_REJECT,
            A.AUTHOR_MODEL,
            A.AUTHOR_RECIPE,
            A.LABEL_IMAGES,
            A.REVIEW_RELEASE,
            A.AUTHOR_SUITE,
            A.RUN_QUALIFICATION,
        }
    ),
    Role.QA: frozenset(
        {
            A.RUN_BATCH,
            A.ACK_ALARM,
            A.REVIEW_REJECT,
            A.REVIEW_RELEASE,
            A.APPROVE_RELEASE,
            A.RETIRE_RELEASE,
            A.SIGN_REPORT,
            A.READ_AUDIT,
            A.EXPORT_RECORDS,
            A.AUTHOR_SUITE,
            A.RUN_QUALIFICATION,
            A.SITE_INTERVENE,
        }
    ),
    Role.ADMIN: frozenset({A.MANAGE_USERS, A.CHANGE_SETTINGS, A.READ_AUDIT, A.EXPORT_RECORDS}),
}
del A

#: The action a signature of each meaning needs.
SIGNING_ACTION: dict[Meaning, Action] = {
    Meaning.AUTHORED: Action.AUTHOR_MODEL,
    Meaning.REVIEWED: Action.REVIEW_RELEASE,
    Meaning.APPROVED: Action.APPROVE_RELEASE,
    Meaning.RELEASED: Action.APPROVE_RELEASE,
    Meaning.REJECTED: Action.APPROVE_RELEASE,
}

#: GMP decisions: the admin role may never hold one of these (a test keeps it so).
GMP_DECISIONS: frozenset[Action] = frozenset(
    {
        Action.REVIEW_REJECT,
        Action.REVIEW_RELEASE,
        Action.APPROVE_RELEASE,
        Action.RETIRE_RELEASE,
        Action.SIGN_REPORT,
        Action.AUTHOR_MODEL,
        Action.AUTHOR_RECIPE,
        Action.LABEL_IMAGES,
        Action.AUTHOR_SUITE,
        Action.RUN_QUALIFICATION,
        Action.SITE_INTERVENE,
    }
)


def allowed(role: Role | str, action: Action | str) -> bool:
    return Action(action) in PERMISSIONS[Role(role)]
