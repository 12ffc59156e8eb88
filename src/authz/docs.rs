//! The permission matrix as people read it, generated from the effective policy
//! (`coursegraph permissions`): `docs/PERMISSIONS.md` is the default policy's, and a test
//! fails when the committed file is stale.

use std::fmt::Write as _;

use super::{
    Action, Role,
    grants::{GrantScope, GrantSet},
    policy::{self, FIELD_RULES, FieldAccess},
    roles::Policy,
};

/// What a role's grants give for an action, as the matrix cell shows it.
fn cell(action: Action, grants: GrantSet) -> &'static str {
    match (action.target(), grants.scope_of(action)) {
        (policy::Target::Invitation, _) => "invitee",
        (_, Some(GrantScope::Organization)) => "yes",
        (_, Some(GrantScope::Own)) => "own",
        (_, None) if action.self_grants() => "self",
        (_, None) => "no",
    }
}

/// Who holds `action` among the built-in roles, in words ("INSTRUCTOR and above; …").
fn describe(policy: &Policy, action: Action) -> String {
    if action == Action::AcceptInvitation {
        return "the invitee, with a verified email".to_owned();
    }
    let holding = |scope| {
        Role::ALL.into_iter().filter(|r| policy.built_in(*r).scope_of(action) == Some(scope)).collect::<Vec<_>>()
    };
    let (org, own) = (holding(GrantScope::Organization), holding(GrantScope::Own));
    let mut s = match org.as_slice() {
        [] => "no built-in role".to_owned(),
        all if all.len() == Role::ALL.len() => "any active member".to_owned(),
        [Role::Admin] => "ADMIN".to_owned(),
        held => format!("{} and above", held[held.len() - 1].as_str()),
    };
    if let Some(lowest) = own.last() {
        s.push_str(&format!("; {} when they own the course", lowest.as_str()));
    }
    if action.self_grants() {
        s = format!("self, or {s} of an organization the user belongs to");
    }
    s
}

pub fn permissions_markdown(policy: &Policy) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Permissions\n");
    let _ = writeln!(
        s,
        "Generated from the policy by `coursegraph permissions` — do not edit by hand.\n\
         The guards, `viewerCan`, `explainAccess`, `whoCan`, the SQL tenant filters, row-level\n\
         security and introspection visibility all read the same grants.\n{}\n",
        match &policy.source {
            Some(p) => format!("This is the policy with the file `{}`.", p.display()),
            None => "This is the default policy (no COURSEGRAPH_POLICY).".to_owned(),
        }
    );
    matrix(&mut s, policy);
    let _ = writeln!(
        s,
        "\nChoosing someone else as a course's instructor (`instructorId`) is the built-in ADMIN's \
         only, never a grant (`{}`).\n",
        policy::ASSIGN_INSTRUCTOR
    );
    let _ = writeln!(s, "## Denials\n");
    let _ = writeln!(
        s,
        "A row the viewer may not see at all — another organization's, a draft they may not read,\n\
         a missing one — is `NOT_FOUND`, the same answer for all three. A row the viewer can see\n\
         but an action they may not take is `FORBIDDEN` with `extensions.reason`\n\
         (`NOT_A_MEMBER`, `MEMBERSHIP_INACTIVE`, `INSUFFICIENT_ROLE`, `NOT_OWNER`, `NOT_SELF`,\n\
         `BUILT_IN_ROLE`), `action`, `requiredRoles`, `grantingRoles`, `viewerRole` and `policy`.\n\
         A denied nullable field is `null` with its error at its own path; the rest of the\n\
         response is delivered.\n"
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
            FieldAccess::Guarded(action) => format!("`{}` ({})", action.as_str(), describe(policy, *action)),
        };
        let _ = writeln!(s, "| `{t}` | `{f}` | {access} |");
    }
    s
}

/// The matrix: every action × the built-in roles and the policy file's.
fn matrix(s: &mut String, policy: &Policy) {
    let _ = writeln!(s, "## The matrix\n");
    let _ = writeln!(
        s,
        "Roles in the resource's organization, highest first, then the policy file's. `own`: only\n\
         when the viewer is the course's instructor. `self`: only for the viewer's own user.\n\
         `invitee`: only the person an invitation is addressed to, with a verified email (any role,\n\
         or none). A member's grants are the union of their built-in role's and their custom\n\
         roles'. Nothing of another organization is ever readable or writable; a platform admin\n\
         acts as ADMIN everywhere (`GRANTED_AS_PLATFORM_ADMIN`, audited).\n"
    );
    let roles: Vec<(String, GrantSet)> = policy
        .built_in_roles()
        .chain(policy.file_roles().iter().cloned())
        .map(|r| (r.key.to_string(), r.grants))
        .collect();
    let _ = write!(s, "| action | policy |");
    for (key, _) in &roles {
        let _ = write!(s, " {key} |");
    }
    let _ = write!(s, "\n|---|---|");
    for _ in &roles {
        let _ = write!(s, "---|");
    }
    let _ = writeln!(s);
    for a in Action::ALL {
        let _ = write!(s, "| `{}` | `{}` |", a.as_str(), a.rule_name());
        for (_, grants) in &roles {
            let _ = write!(s, " {} |", cell(a, *grants));
        }
        let _ = writeln!(s);
    }
    if !policy.permissions().is_empty() {
        let _ = writeln!(s, "\nToken permissions (`[idp.permissions]`, with COURSEGRAPH_ROLE_SOURCE=token):\n");
        let _ = writeln!(s, "| permission | grants |\n|---|---|");
        for (p, g) in policy.permissions() {
            let _ = writeln!(s, "| `{p}` | {g} |");
        }
    }
}
