//! The README stays true: every GraphQL operation in it validates against the schema, its
//! runnable command blocks run (against a real server, in a fresh directory) and print the
//! output it shows, its configuration table is exactly the CLI's settings, and the flags
//! its command table names exist.

use std::{collections::BTreeSet, path::Path, process::Command};

use serde_json::Value;

use crate::helpers::{BIN, ServerProcess, clean_command};

const README: &str = include_str!("../../README.md");

/// A fenced code block: its language tag, its text and the README line it starts on.
struct Block {
    lang: String,
    text: String,
    line: usize,
}

fn blocks() -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, l) in README.lines().enumerate() {
        match (open.take(), l.strip_prefix("```")) {
            (None, Some(lang)) => open = Some(Block { lang: lang.trim().to_owned(), text: String::new(), line: i + 1 }),
            (Some(b), Some(_)) => out.push(b),
            (Some(mut b), None) => {
                b.text.push_str(l);
                b.text.push('\n');
                open = Some(b);
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "the README ends inside a code block");
    out
}

/// The text between `start` and the next `end` after it, for every occurrence.
fn between<'a>(text: &'a str, start: &str, end: char) -> Vec<&'a str> {
    text.match_indices(start)
        .filter_map(|(i, _)| {
            let rest = &text[i + start.len()..];
            rest.find(end).map(|j| &rest[..j])
        })
        .collect()
}

/// Every GraphQL document the README shows: `graphql` blocks, the bodies curl posts,
/// the doctor's `--query`, and the JavaScript client's `query:`.
fn operations() -> Vec<(usize, String)> {
    let mut ops = Vec::new();
    for b in blocks() {
        match b.lang.as_str() {
            "graphql" => ops.push((b.line, b.text.clone())),
            "bash" | "sh" => {
                for body in between(&b.text, "-d '", '\'') {
                    let v: Value = serde_json::from_str(body)
                        .unwrap_or_else(|e| panic!("README line {}: curl body is not JSON ({e}): {body}", b.line));
                    ops.push((b.line, v["query"].as_str().expect("a query in the curl body").to_owned()));
                }
                ops.extend(between(&b.text, "--query '", '\'').into_iter().map(|q| (b.line, q.to_owned())));
            }
            "js" | "ts" => ops.extend(between(&b.text, "query: \"", '"').into_iter().map(|q| (b.line, q.to_owned()))),
            _ => {}
        }
    }
    ops
}

#[tokio::test]
async fn every_graphql_operation_in_the_readme_validates_against_the_schema() {
    let probe = coursegraph::graphql::schema::build_probe_schema();
    let ops = operations();
    assert!(ops.len() >= 6, "the README's operations were found: {}", ops.len());
    for (line, op) in ops {
        let checked = coursegraph::graphql::limits::validate(&probe, async_graphql::Request::new(&op)).await;
        if let Err(errors) = checked {
            let messages: Vec<_> = errors.iter().map(|e| e.message.as_str()).collect();
            panic!("README line {line}: {op}\n  does not validate: {messages:?}");
        }
    }
}

/// Every COURSEGRAPH_* setting the binary reads, from each command's `--help`.
fn cli_settings() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for cmd in ["", "serve", "migrate", "schema", "permissions", "token", "seed", "doctor"] {
        let help = help(cmd);
        names.extend(help.match_indices("[env: ").map(|(i, _)| identifier(&help[i + "[env: ".len()..])));
    }
    names
}

fn help(cmd: &str) -> String {
    let dir = std::env::temp_dir();
    let mut c = clean_command(&dir);
    if !cmd.is_empty() {
        c.arg(cmd);
    }
    let out = c.arg("--help").output().unwrap();
    assert!(out.status.success(), "coursegraph {cmd} --help: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn setting_names(text: &str) -> BTreeSet<String> {
    text.match_indices("COURSEGRAPH_").map(|(i, _)| identifier(&text[i..])).collect()
}

/// The environment variable name `text` starts with.
fn identifier(text: &str) -> String {
    text.chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect()
}

#[test]
fn the_readme_configuration_table_is_exactly_the_clis_settings() {
    let cli = cli_settings();
    assert!(cli.len() > 30, "settings found in --help: {cli:?}");
    let section = README.split("\n## Configuration").nth(1).expect("a Configuration section");
    let section = section.split("\n## ").next().unwrap();
    let table: String = section
        .lines()
        .filter(|l| l.starts_with("| `COURSEGRAPH_"))
        .map(|l| {
            // The first column only: the meaning may name other settings.
            l.split(" | ").next().unwrap_or_default().to_owned() + "\n"
        })
        .collect();
    let documented = setting_names(&table);
    let missing: Vec<_> = cli.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&cli).collect();
    assert!(missing.is_empty(), "settings the README's table lacks: {missing:?}");
    assert!(unknown.is_empty(), "settings in the README's table the binary does not read: {unknown:?}");
    // Nor does any other part of the README name a setting that does not exist (the
    // test suite's own variables aside).
    let named: Vec<_> =
        setting_names(README).into_iter().filter(|n| !n.starts_with("COURSEGRAPH_TEST_") && !cli.contains(n)).collect();
    assert!(named.is_empty(), "the README names settings the binary does not read: {named:?}");
}

#[test]
fn the_flags_of_the_readme_command_table_exist() {
    let section = README.split("\n## Commands").nth(1).expect("a Commands section");
    let section = section.split("\n## ").next().unwrap();
    let mut checked = 0;
    for row in section.lines().filter(|l| l.starts_with("| `coursegraph")) {
        let usage = between(row, "`", '`').into_iter().next().unwrap_or_default();
        let cmd = usage.split_whitespace().nth(1).unwrap_or("");
        let help = help(if cmd.starts_with('-') || cmd == "/" { "" } else { cmd });
        for flag in usage.split(|c: char| c.is_whitespace() || "[]|".contains(c)).filter(|w| w.starts_with("--")) {
            assert!(help.contains(&format!("{flag} ")), "`coursegraph {cmd}` has no {flag} (README: {row})");
            checked += 1;
        }
    }
    assert!(checked >= 15, "flags checked: {checked}");
}

/// The README's shell blocks made only of the commands it is safe to run here — minting
/// and inspecting tokens, seeding, printing, and curl against the server — run in a fresh
/// directory against a fresh server, `cargo run` standing for the binary under test. The
/// output a block shows in its comment lines must be what it prints.
#[tokio::test]
async fn the_readme_commands_run_and_print_what_it_shows() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let shim = bin.join("cargo");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\n[ \"$1\" = run ] || {{ echo \"cargo $1 is not run here\" >&2; exit 99; }}\nshift\n\
             [ \"$1\" = -q ] && shift\n[ \"$1\" = -- ] && shift\nexec '{BIN}' \"$@\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let base = server.url("");

    let mut ran = 0;
    for b in blocks().into_iter().filter(|b| b.lang == "bash" || b.lang == "sh") {
        let Some(script) = runnable(&b.text) else { continue };
        let script = script.replace("http://127.0.0.1:8000", &base);
        let out = run(dir.path(), &bin, &script);
        assert!(!out.contains("error:") && !out.contains("\"errors\""), "README line {}: {script}\n{out}", b.line);
        for expected in shown_output(&b.text) {
            assert!(
                out.lines().any(|l| squeeze(l).contains(&expected)),
                "README line {}: the output lacks `{expected}`:\n{out}",
                b.line
            );
        }
        ran += 1;
    }
    assert!(ran >= 3, "runnable README blocks: {ran}");
}

/// The block's commands as one script, when every one of them is safe to run here.
fn runnable(text: &str) -> Option<String> {
    const SAFE: [&str; 6] = ["token", "doctor", "seed", "schema", "permissions", "migrate"];
    let script = text.replace("\\\n", " ");
    let commands: Vec<&str> = script.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let safe = |l: &str| {
        let l = l.strip_prefix("TOKEN=$(").unwrap_or(l);
        let sub = l.strip_prefix("cargo run -q -- ").or_else(|| l.strip_prefix("cargo run -- "));
        sub.is_some_and(|s| SAFE.iter().any(|c| s.starts_with(&format!("{c} ")))) || l.starts_with("curl ")
    };
    (!commands.is_empty() && commands.iter().all(|l| safe(l))).then(|| commands.join("\n"))
}

/// The output lines a block shows as comments (`#   ok   format …`), minus elisions.
fn shown_output(text: &str) -> Vec<String> {
    text.lines().filter_map(|l| l.strip_prefix('#')).map(squeeze).filter(|l| !l.is_empty() && l != "…").collect()
}

fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn run(dir: &Path, bin: &Path, script: &str) -> String {
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut c = Command::new("bash");
    c.arg("-c").arg(format!("exec 2>&1\n{script}")).current_dir(dir).env("PATH", path);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("COURSEGRAPH_") || k == "DATABASE_URL") {
        c.env_remove(k);
    }
    String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned()
}
