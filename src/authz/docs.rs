//! `docs/PERMISSIONS.md`, generated from the policy itself (`coursegraph permissions`);
//! a test fails when the committed file is stale.

use std::fmt::Write as _;

use super::{
    Action, Role,
    policy::{self, FIELD_RULES, FieldAccess},
};

/// What a role gets for an action, as the matrix cell shows it.
fn cell(action: Action, role: Role) -> &'static str {
    let r = policy::rule(action);
    if action.target() == policy::Target::Invitation {
        "invitee"
    } else if role >= r.min_role {
        "yes"
    } else if r.owner_min_role.is_some_and(|m| role >= m) {
        "own"
    } else if r.self_grants {
        "self"
    } else {
        "no"
    }
}

pub fn permissions_markdown() -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Permissions\n");
    let _ = writeln!(
        s,
        "Generated from `src/authz/policy.rs` by `coursegraph permissions` — do not edit by hand.\n\
         The guards, `viewerCan`, `explainAccess`, the SQL tenant filters and introspection\n\
         visibility all read the same rules.\n"
    );
    let _ = writeln!(s, "## The matrix\n");
    let _ = writeln!(
        s,
        "Roles in the resource's organization, highest first. `own`: only when the viewer is the\n\
         course's instructor. `self`: only for the viewer's own user. `invitee`: only the person an\n\
         invitation is addressed to, with a verified email (any role, or none). Nothing of another\n\
         organization is ever readable or writable; a platform admin acts as ADMIN everywhere\n\
         (`GRANTED_AS_PLATFORM_ADMIN`, audited).\n"
    );
    let _ = write!(s, "| action | policy |");
    for r in Role::ALL {
        let _ = write!(s, " {} |", r.as_str());
    }
    let _ = write!(s, "\n|---|---|");
    for _ in Role::ALL {
        let _ = write!(s, "---|");
    }
    let _ = writeln!(s);
    for a in Action::ALL {
        let _ = write!(s, "| `{}` | `{}` |", a.as_str(), policy::rule(a).name);
        for r in Role::ALL {
            let _ = write!(s, " {} |", cell(a, r));
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "\nChoosing someone else as a course's instructor (`instructorId`) is ADMIN only \
         (`{}`).\n",
        policy::ASSIGN_INSTRUCTOR.name
    );
    let _ = writeln!(s, "## Denials\n");
    let _ = writeln!(
        s,
        "A row the viewer may not see at all — another organization's, a draft below INSTRUCTOR,\n\
         a missing one — is `NOT_FOUND`, the same answer for all three. A row the viewer can see\n\
         but an action they may not take is `FORBIDDEN` with `extensions.reason`\n\
         (`NOT_A_MEMBER`, `MEMBERSHIP_INACTIVE`, `INSUFFICIENT_ROLE`, `NOT_OWNER`, `NOT_SELF`),\n\
         `action`, `requiredRoles`, `viewerRole` and `policy`. A denied nullable field is `null`\n\
         with its error at its own path; the rest of the response is delivered.\n"
    );
    let _ = writeln!(s, "## Every field\n");
    let _ = writeln!(
        s,
        "Deny by default: each field of each object type has an entry here (a test walks the\n\
         schema and fails on a field without one). `parent`: readable by whoever could load the\n\
         row (the row itself was scoped in SQL). `signed in`: any authenticated viewer, answering\n\
         about themself. Otherwise the action the resolver checks.\n"
    );
    let _ = writeln!(s, "| type | field | access |\n|---|---|---|");
    for (t, f, a) in FIELD_RULES {
        let access = match a {
            FieldAccess::Authenticated => "signed in".to_owned(),
            FieldAccess::Parent => "parent".to_owned(),
            FieldAccess::Guarded(action) => format!("`{}` ({})", action.as_str(), policy::rule(*action).describe()),
        };
        let _ = writeln!(s, "| `{t}` | `{f}` | {access} |");
    }
    s
}
