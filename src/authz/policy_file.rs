//! The policy file (COURSEGRAPH_POLICY, TOML): built-in roles' grants replaced, roles
//! offered in every organization, and the identity provider's permissions mapped to
//! grants. Every problem is reported at once, each as `FILE:LINE:COLUMN: message`, by
//! `coursegraph policy check` and by `serve`, which refuses to start on any.

use std::{fmt, ops::Range, path::Path};

use toml_edit::{Document, Item, TableLike};

use super::{
    Role,
    grants::{Grant, GrantSet},
    roles::{Policy, RoleDef, RoleKind, file_role_id, is_valid_key},
};

/// One problem, where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The problems of one file, printed one per line as `FILE:LINE:COLUMN: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problems {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: {}", self.file, p.line, p.column, p.message)?;
        }
        Ok(())
    }
}

/// Reads and checks the policy file at `path`.
pub fn load(path: &Path) -> Result<Policy, Problems> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Problems {
        file: file.clone(),
        problems: vec![Problem { line: 1, column: 1, message: format!("cannot read the policy file: {e}") }],
    })?;
    let mut policy = parse(&text).map_err(|problems| Problems { file, problems })?;
    policy.source = Some(path.to_owned());
    Ok(policy)
}

/// Checks `text` as a policy file: the policy, or every problem in the file's order.
pub fn parse(text: &str) -> Result<Policy, Vec<Problem>> {
    let doc = match Document::parse(text) {
        Ok(d) => d,
        Err(e) => {
            let at = e.span().map(|s| s.start).unwrap_or(0);
            return Err(vec![problem(text, at, format!("not valid TOML: {}", e.message().trim()))]);
        }
    };
    let mut r = Reader { text, problems: Vec::new() };
    let root = doc.as_table();
    let mut built_in = Vec::new();
    let mut file_roles = Vec::new();
    let mut permissions = Vec::new();
    for (key, item) in root.iter() {
        match key {
            "roles" => r.roles(root.get_key_value(key), item, &mut built_in, &mut file_roles),
            "idp" => r.idp(item, &mut permissions),
            other => r.at_key(root, other, format!("unknown field `{other}`: a policy file has `roles` and `idp`")),
        }
    }
    r.ordered(&built_in);
    let mut problems = r.problems;
    if problems.is_empty() {
        let built_in: Vec<(Role, GrantSet)> = built_in.iter().map(|b| (b.role, b.grants)).collect();
        return Ok(Policy::new(&built_in, file_roles, permissions, None));
    }
    problems.sort_by_key(|p| (p.line, p.column));
    Err(problems)
}

/// A built-in role the file changes, and where.
struct BuiltIn {
    role: Role,
    grants: GrantSet,
    at: usize,
}

struct Reader<'t> {
    text: &'t str,
    problems: Vec<Problem>,
}

fn problem(text: &str, offset: usize, message: String) -> Problem {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    Problem { line, column, message }
}

fn start(span: Option<Range<usize>>) -> usize {
    span.map(|s| s.start).unwrap_or(0)
}

impl Reader<'_> {
    fn at(&mut self, offset: usize, message: String) {
        self.problems.push(problem(self.text, offset, message));
    }

    /// A problem at `key` of `table`.
    fn at_key(&mut self, table: &dyn TableLike, key: &str, message: String) {
        let offset = table.get_key_value(key).map(|(k, _)| start(k.span())).unwrap_or(0);
        self.at(offset, message);
    }

    fn roles(
        &mut self,
        at: Option<(&toml_edit::Key, &Item)>,
        item: &Item,
        built_in: &mut Vec<BuiltIn>,
        file_roles: &mut Vec<RoleDef>,
    ) {
        let Some(roles) = item.as_table_like() else {
            self.at(start(at.and_then(|(k, _)| k.span())), "`roles` must be a table of roles".into());
            return;
        };
        for (key, role) in roles.iter() {
            let key_at = roles.get_key_value(key).map(|(k, _)| start(k.span())).unwrap_or(0);
            let Some(table) = role.as_table_like() else {
                self.at(key_at, format!("`roles.{key}` must be a table (`[roles.{key}]`)"));
                continue;
            };
            match Role::ALL.iter().find(|r| r.as_str() == key) {
                Some(Role::Admin) => {
                    self.at(key_at, "a `[roles.ADMIN]` table: ADMIN always holds every grant".into());
                }
                Some(r) => {
                    self.fields(table, &["grants"], key);
                    if let Some(grants) = self.grants(table, key, true, key_at) {
                        built_in.push(BuiltIn { role: *r, grants, at: key_at });
                    }
                }
                None => self.file_role(key, key_at, table, file_roles),
            }
        }
    }

    fn file_role(&mut self, key: &str, key_at: usize, table: &dyn TableLike, file_roles: &mut Vec<RoleDef>) {
        if Role::ALL.iter().any(|r| r.as_str().eq_ignore_ascii_case(key)) {
            self.at(key_at, format!("role key `{key}` clashes with the built-in role {}", key.to_uppercase()));
            return;
        }
        if !is_valid_key(key) {
            self.at(key_at, format!("role key `{key}`: a key is ^[a-z][a-z0-9_]{{0,62}}$"));
            return;
        }
        self.fields(table, &["name", "description", "grants"], key);
        let name = self.string(table, "name", key);
        let description = self.string(table, "description", key);
        if let Some(grants) = self.grants(table, key, true, key_at) {
            file_roles.push(RoleDef {
                id: file_role_id(key),
                key: key.into(),
                name: name.unwrap_or_else(|| key.to_owned()),
                description,
                grants,
                kind: RoleKind::File,
            });
        }
    }

    fn idp(&mut self, item: &Item, permissions: &mut Vec<(String, GrantSet)>) {
        let Some(idp) = item.as_table_like() else {
            self.at(start(item.span()), "`idp` must be a table".into());
            return;
        };
        for (key, value) in idp.iter() {
            if key != "permissions" {
                self.at_key(idp, key, format!("unknown field `idp.{key}`: the `idp` table has `permissions`"));
                continue;
            }
            let Some(map) = value.as_table_like() else {
                self.at_key(idp, key, "`idp.permissions` must be a table: permission = [grants]".into());
                continue;
            };
            for (permission, _) in map.iter() {
                if let Some(g) = self.grants(map, permission, false, 0) {
                    permissions.push((permission.to_owned(), g));
                }
            }
        }
    }

    /// Reports fields of `table` other than `allowed`.
    fn fields(&mut self, table: &dyn TableLike, allowed: &[&str], role: &str) {
        for (key, _) in table.iter() {
            if !allowed.contains(&key) {
                let expected = allowed.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ");
                self.at_key(table, key, format!("unknown field `{key}` in `roles.{role}` (expected {expected})"));
            }
        }
    }

    fn string(&mut self, table: &dyn TableLike, field: &str, role: &str) -> Option<String> {
        let item = table.get(field)?;
        match item.as_str() {
            Some(s) => Some(s.to_owned()),
            None => {
                self.at(start(item.span()), format!("`roles.{role}.{field}` must be a string"));
                None
            }
        }
    }

    /// The grants under `field` of `table` (a role's `grants`, or a permission's list),
    /// each checked, and with each grant's prerequisite ([`GrantSet::missing_prerequisite`]).
    /// `None` when any is wrong (each reported).
    fn grants(&mut self, table: &dyn TableLike, field: &str, role: bool, at: usize) -> Option<GrantSet> {
        let (what, key) = if role { (format!("`roles.{field}`"), "grants") } else { (format!("`{field}`"), field) };
        let Some(item) = table.get(key) else {
            self.at(at, format!("{what} has no `grants`"));
            return None;
        };
        let Some(list) = item.as_array() else {
            self.at(start(item.span()), format!("{what}: grants are a list of strings such as \"READ_COURSE\""));
            return None;
        };
        let mut set = GrantSet::EMPTY;
        let mut ok = true;
        let mut at_of = Vec::new();
        for v in list.iter() {
            let at = start(v.span());
            let Some(s) = v.as_str() else {
                self.at(at, "a grant is a string such as \"READ_COURSE\" or \"MANAGE_TRACKS:OWN\"".into());
                ok = false;
                continue;
            };
            match Grant::parse(s) {
                Ok(g) if g.action.is_administration() => {
                    let holder = if role { "a role other than ADMIN" } else { "a token permission" };
                    self.at(at, format!("{} is an administration action: {holder} cannot hold it", g.action.as_str()));
                    ok = false;
                }
                Ok(g) => {
                    at_of.push((g.action, at));
                    set = set.with(g);
                }
                Err(e) => {
                    self.at(at, e.to_string());
                    ok = false;
                }
            }
        }
        if let Some((action, why)) = set.missing_prerequisite() {
            let at = at_of.iter().find(|(a, _)| *a == action).map_or(at, |(_, at)| *at);
            self.at(at, why.into());
            ok = false;
        }
        ok.then_some(set)
    }

    /// VIEWER ⊆ MEMBER ⊆ INSTRUCTOR ⊆ ADMIN, with the file's changes.
    fn ordered(&mut self, changed: &[BuiltIn]) {
        let grants = |r: Role| {
            changed.iter().find(|b| b.role == r).map(|b| b.grants).unwrap_or_else(|| Policy::default().built_in(r))
        };
        for pair in Role::ALL.windows(2) {
            let (higher, lower) = (pair[0], pair[1]);
            let (h, l) = (grants(higher), grants(lower));
            if h.covers(&l) {
                continue;
            }
            let extra: Vec<String> = l.iter().filter(|g| !h.holds(g.action, g.scope)).map(|g| g.to_string()).collect();
            // Reported at whichever of the two the file changes (the lower one if both).
            let at = changed.iter().find(|b| b.role == lower).or_else(|| changed.iter().find(|b| b.role == higher));
            self.at(
                at.map(|b| b.at).unwrap_or(0),
                format!(
                    "built-in roles must stay ordered (VIEWER ⊆ MEMBER ⊆ INSTRUCTOR ⊆ ADMIN): {} holds {} that {} does not",
                    lower.as_str(),
                    extra.join(", "),
                    higher.as_str()
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::{Action, grants::GrantScope};

    const EXAMPLE: &str = r#"
[roles.MEMBER]
grants = ["READ_ORGANIZATION", "READ_COURSE", "READ_MEMBERS"]

[roles.teaching_assistant]
name = "Teaching assistant"
description = "Sees and edits the tracks of the courses they teach"
grants = ["READ_ORGANIZATION", "READ_COURSE", "READ_DRAFT_COURSE:OWN", "MANAGE_TRACKS:OWN"]

[idp.permissions]
"courses:write" = ["READ_DRAFT_COURSE", "UPDATE_COURSE", "MANAGE_TRACKS"]
"#;

    #[test]
    fn the_documented_example_reads_as_written() {
        let p = parse(EXAMPLE).unwrap();
        assert!(p.built_in(Role::Member).has(Action::ReadMembers));
        assert!(!p.built_in(Role::Viewer).has(Action::ReadMembers));
        let ta = p.file_role("teaching_assistant").unwrap();
        assert_eq!(ta.name, "Teaching assistant");
        assert_eq!(ta.grants.scope_of(Action::ManageTracks), Some(GrantScope::Own));
        assert_eq!(ta.id, file_role_id("teaching_assistant"));
        let w = p.permission("courses:write").unwrap();
        assert!(w.holds(Action::UpdateCourse, GrantScope::Organization));
    }

    fn problems(text: &str) -> Vec<String> {
        parse(text).unwrap_err().into_iter().map(|p| format!("{}:{}: {}", p.line, p.column, p.message)).collect()
    }

    #[test]
    fn every_problem_is_reported_where_it_is() {
        let text = "[roles.ADMIN]\ngrants = []\n\n[roles.ta]\ngrants = [\"READ_COURSES\", \"CREATE_COURSE:OWN\", \"MANAGE_MEMBERS\"]\ncolor = \"red\"\n\n[roles.Admin]\ngrants = []\n\n[roles.Bad-Key]\ngrants = []\n\n[roles.creator]\ngrants = [\"CREATE_COURSE\"]\n\n[roles.editor]\ngrants = [\"READ_DRAFT_COURSE:OWN\", \"UPDATE_COURSE\"]\n\n[roles.invitee]\ngrants = [\"ACCEPT_INVITATION\", \"READ_COURSE:EVERYWHERE\"]\n\n[idp.permissions]\n\"admin\" = [\"MANAGE_ROLES\"]\n\n[idp.groups]\n\n[extra]\n";
        let got = problems(text);
        let expected = [
            "1:8: a `[roles.ADMIN]` table: ADMIN always holds every grant",
            "5:11: unknown action `READ_COURSES`",
            "5:27: `CREATE_COURSE:OWN`: CREATE_COURSE has no owner; OWN exists for READ_DRAFT_COURSE, READ_COURSE_METADATA, UPDATE_COURSE, DELETE_COURSE, MANAGE_TRACKS",
            "5:48: MANAGE_MEMBERS is an administration action: a role other than ADMIN cannot hold it",
            "6:1: unknown field `color` in `roles.ta` (expected `name`, `description`, `grants`)",
            "8:8: role key `Admin` clashes with the built-in role ADMIN",
            "11:8: role key `Bad-Key`: a key is ^[a-z][a-z0-9_]{0,62}$",
            "15:11: CREATE_COURSE needs UPDATE_COURSE too (either scope): a course's creator teaches it",
            "18:36: UPDATE_COURSE needs READ_DRAFT_COURSE at the same scope or wider: whoever edits a course reads it as a draft",
            "21:11: ACCEPT_INVITATION is not grantable: it follows the invitee's verified email",
            "21:32: unknown scope `EVERYWHERE` (ORGANIZATION or OWN)",
            "24:12: MANAGE_ROLES is an administration action: a token permission cannot hold it",
            "26:6: unknown field `idp.groups`: the `idp` table has `permissions`",
            "28:2: unknown field `extra`: a policy file has `roles` and `idp`",
        ];
        assert_eq!(got, expected, "{got:#?}");
    }

    #[test]
    fn built_in_roles_must_stay_ordered() {
        let got = problems("[roles.VIEWER]\ngrants = [\"READ_ORGANIZATION\", \"READ_COURSE\", \"READ_MEMBERS\"]\n");
        assert_eq!(
            got,
            [
                "1:8: built-in roles must stay ordered (VIEWER ⊆ MEMBER ⊆ INSTRUCTOR ⊆ ADMIN): VIEWER holds READ_MEMBERS that MEMBER does not"
            ]
        );
    }

    #[test]
    fn a_toml_syntax_error_is_one_problem_with_its_place() {
        let got = problems("[roles.ta]\ngrants = [\"READ_COURSE\"\n");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("2:") && got[0].contains("not valid TOML"), "{got:?}");
    }

    #[test]
    fn an_empty_file_is_the_default_policy() {
        assert_eq!(parse("").unwrap(), Policy::default());
    }
}
