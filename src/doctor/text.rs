//! The doctor's report as a terminal checklist: the same content as the JSON.

use std::fmt::Write as _;

use super::{DecisionReport, IdentityReport, Report, Status, ViewerReport};

fn mark(s: Status) -> &'static str {
    match s {
        Status::Pass => "ok  ",
        Status::Fail => "FAIL",
        Status::Warn => "warn",
        Status::Skip => "skip",
    }
}

/// The report, section by section: checks, identity, viewer, decisions, the answer.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "coursegraph access doctor\n");
    checks(&mut s, r);
    if let Some(i) = &r.identity {
        identity(&mut s, i);
    }
    if let Some(v) = &r.viewer {
        viewer(&mut s, v);
    }
    if !r.decisions.is_empty() {
        decisions(&mut s, &r.decisions);
    }
    let answer = match (r.answer.code, r.answer.reason) {
        (Some(c), Some(reason)) if r.answer.status == 503 => format!("HTTP 503 {c} ({reason})"),
        (Some(c), Some(reason)) => format!("{c} {reason}"),
        _ => "accepted".to_owned(),
    };
    let _ = writeln!(s, "\nthe server answers: {answer}");
    let _ = writeln!(s, "{}", if r.ok { "OK" } else { "NOT OK" });
    s
}

fn checks(s: &mut String, r: &Report) {
    for c in &r.checks {
        let reason = c.reason.map(|r| format!(" [{r}]")).unwrap_or_default();
        let _ = writeln!(s, "  {} {:<20}{reason} {}", mark(c.status), c.name, c.detail);
        if let Some(h) = &c.hint
            && c.status != Status::Pass
        {
            let _ = writeln!(s, "       {:<20} fix: {h}", "");
        }
    }
}

fn identity(s: &mut String, i: &IdentityReport) {
    let _ = writeln!(s, "\nidentity{}", if i.verified { "" } else { " (unverified: the token is refused)" });
    let _ = writeln!(s, "  issuer        {}", i.issuer);
    let _ = writeln!(s, "  subject       {}", i.subject);
    if let Some(e) = &i.email {
        let _ = writeln!(s, "  email         {e}{}", if i.email_verified { " (verified)" } else { " (not verified)" });
    }
    if let Some(o) = &i.organization {
        let _ = writeln!(
            s,
            "  organization  {}{}",
            o.external_id,
            o.name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default()
        );
    }
    let _ = writeln!(
        s,
        "  roles         {:?} → {} (preset {})",
        i.idp_roles,
        i.mapped_role.map(|r| r.as_str()).unwrap_or("none"),
        i.preset
    );
    if i.platform_admin {
        let _ = writeln!(s, "  platform admin");
    }
}

fn viewer(s: &mut String, v: &ViewerReport) {
    let _ = writeln!(s, "\nviewer{}", if v.hypothetical { " (what provisioning would do)" } else { "" });
    let _ = writeln!(s, "  user          {}", v.user_id.map(|u| u.to_string()).unwrap_or("(new)".into()));
    if !v.would_create.is_empty() {
        let _ = writeln!(s, "  would create  {}", v.would_create.join(", "));
    }
    if !v.would_accept_invitations.is_empty() {
        let _ = writeln!(s, "  would accept  {} invitation(s)", v.would_accept_invitations.len());
    }
    for m in &v.memberships {
        let _ = writeln!(
            s,
            "  membership    {} {}{}{} ({})",
            m.organization_slug.as_deref().unwrap_or("?"),
            m.role.as_str(),
            m.roles.iter().map(|k| format!(" + {k}")).collect::<String>(),
            if m.active { "" } else { " (removed)" },
            m.source
        );
    }
    let _ = writeln!(
        s,
        "  active org    {}{}",
        v.active_organization_id.map(|u| u.to_string()).unwrap_or("none".into()),
        v.role.map(|r| format!(" as {}", r.as_str())).unwrap_or_default()
    );
    if !v.grants.is_empty() {
        let _ = writeln!(s, "  grants        {}", v.grants.join(", "));
    }
    for t in &v.token_grants {
        let _ = writeln!(s, "  from token    {} → {}", t.source, t.grants.join(", "));
    }
}

fn decisions(s: &mut String, decisions: &[DecisionReport]) {
    let hypothetical = decisions.iter().any(|d| d.hypothetical);
    let _ = writeln!(s, "\ndecisions{}", if hypothetical { " (if the token were accepted)" } else { "" });
    for d in decisions {
        let roles: Vec<&str> = d.required_roles.iter().map(|r| r.as_str()).collect();
        let mark = match (d.hypothetical, d.allowed) {
            (false, true) => "ok  ",
            (false, false) => "DENY",
            (true, true) => "if accepted: ok  ",
            (true, false) => "if accepted: DENY",
        };
        // Which of the viewer's roles allowed it; for a refusal, the custom roles that would.
        let custom: Vec<&str> =
            d.granting_roles.iter().map(String::as_str).filter(|k| crate::authz::Role::parse(k).is_none()).collect();
        let extra = match (d.allowed, d.granted_by.is_empty(), custom.is_empty()) {
            (true, false, _) => format!(" via {}", d.granted_by.join(", ")),
            (false, _, false) => format!(" — also granted by {}", custom.join(", ")),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "  {} {:<28} {} {} (needs {}; viewer {}; policy {}){extra}",
            mark,
            d.path,
            d.action,
            d.reason,
            if roles.is_empty() { "-".to_owned() } else { roles.join("/") },
            d.viewer_role.map(|r| r.as_str()).unwrap_or("none"),
            d.policy
        );
    }
}
