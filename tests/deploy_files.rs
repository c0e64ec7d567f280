//! The self-hosting files (Dockerfile, docker-compose.yml, telenode.env
//! example, systemd unit) agree with the node's real configuration: every
//! `TELENODE_*` variable they set exists, its value parses, and the ports,
//! volume and health check point where the node actually listens.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use clap::CommandFactory;
use telenode::cli::Cli;

const COMPOSE: &str = include_str!("../docker-compose.yml");
const DOCKERFILE: &str = include_str!("../Dockerfile");
const ENV_EXAMPLE: &str = include_str!("../telenode.env.example");
const UNIT: &str = include_str!("../examples/telenode.service");

/// Every environment variable the CLI reads, from clap itself.
fn known_env() -> BTreeSet<String> {
    fn walk(cmd: &clap::Command, out: &mut BTreeSet<String>) {
        for arg in cmd.get_arguments() {
            if let Some(env) = arg.get_env() {
                out.insert(env.to_string_lossy().into_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = BTreeSet::new();
    walk(&Cli::command(), &mut out);
    out
}

/// `TELENODE_X: "value"` (compose) and `TELENODE_X=value` (Dockerfile, env).
fn assignments(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line
            .trim()
            .trim_start_matches("ENV ")
            .trim_end_matches('\\')
            .trim();
        let Some(start) = line.find("TELENODE_") else {
            continue;
        };
        let rest = &line[start..];
        let Some((key, value)) = rest.split_once([':', '=']) else {
            continue;
        };
        let value = value.trim().trim_matches('"').to_owned();
        out.insert(key.trim().to_owned(), value);
    }
    out
}

#[test]
fn every_variable_is_one_the_node_reads() {
    let known = known_env();
    assert!(known.contains("TELENODE_LISTEN"), "{known:?}");
    for (file, text) in [
        ("docker-compose.yml", COMPOSE),
        ("Dockerfile", DOCKERFILE),
        ("telenode.env.example", ENV_EXAMPLE),
    ] {
        for key in assignments(text).keys() {
            assert!(
                known.contains(key),
                "{file} sets {key}, which the node does not read"
            );
        }
    }
}

#[test]
fn ports_volume_and_health_check_match_the_node() {
    let compose = assignments(COMPOSE);
    let docker = assignments(DOCKERFILE);
    for env in [&compose, &docker] {
        let listen: SocketAddr = env["TELENODE_LISTEN"].parse().expect("listen parses");
        let admin: SocketAddr = env["TELENODE_ADMIN_LISTEN"].parse().expect("admin parses");
        assert!(
            admin.ip().is_loopback(),
            "operations listener stays on loopback"
        );
        assert_ne!(listen.port(), admin.port());
        let health = format!("http://127.0.0.1:{}/readyz", admin.port());
        assert!(
            COMPOSE.contains(&health) && DOCKERFILE.contains(&health),
            "health check uses {health}"
        );
        assert!(
            COMPOSE.contains(&format!(":{}/tcp\"", listen.port())),
            "compose publishes the listen port {}",
            listen.port()
        );
        assert!(DOCKERFILE.contains(&format!("EXPOSE {}/tcp", listen.port())));
        assert!(env["TELENODE_DATA_DIR"].starts_with("/var/lib/telenode/"));
    }
    assert_eq!(compose["TELENODE_LISTEN"], docker["TELENODE_LISTEN"]);
    assert!(
        COMPOSE.contains("telenode-data:/var/lib/telenode/data"),
        "data volume"
    );
    assert!(
        COMPOSE.contains("telenode-keys:/var/lib/telenode/keys"),
        "key volume"
    );
    assert!(DOCKERFILE.contains("VOLUME [\"/var/lib/telenode/data\", \"/var/lib/telenode/keys\"]"));
    for env in [&compose, &docker] {
        // The key is never inside the data directory that backups copy.
        assert!(env["TELENODE_MASTER_KEY_FILE"].starts_with("/var/lib/telenode/keys/"));
        assert!(!env["TELENODE_MASTER_KEY_FILE"].starts_with(&env["TELENODE_DATA_DIR"]));
    }
    // TLS files come from secrets, and the listener is not loopback, so the
    // node's own validation requires them.
    assert_eq!(compose["TELENODE_TLS_CERT"], "/run/secrets/tls_cert");
    assert_eq!(compose["TELENODE_TLS_KEY"], "/run/secrets/tls_key");
    assert!(COMPOSE.contains("file: ./secrets/fullchain.pem"));
}

#[test]
fn turn_ports_and_secret_match_the_node() {
    let compose = assignments(COMPOSE);
    let docker = assignments(DOCKERFILE);
    for env in [&compose, &docker] {
        let turn: SocketAddr = env["TELENODE_TURN_LISTEN"]
            .parse()
            .expect("turn listen parses");
        let port = turn.port();
        for proto in ["udp", "tcp"] {
            assert!(
                COMPOSE.contains(&format!("\"{port}:{port}/{proto}\"")),
                "compose publishes TURN {port}/{proto}"
            );
            assert!(
                DOCKERFILE
                    .lines()
                    .any(|l| l.starts_with("EXPOSE") && l.contains(&format!(" {port}/{proto}"))),
                "Dockerfile exposes TURN {port}/{proto}"
            );
        }
    }
    // TURN over TLS: published and exposed, and the node has a certificate.
    let tls: SocketAddr = compose["TELENODE_TURN_TLS_LISTEN"]
        .parse()
        .expect("turn tls listen parses");
    let port = tls.port();
    assert!(COMPOSE.contains(&format!("\"{port}:{port}/tcp\"")));
    assert!(
        DOCKERFILE
            .lines()
            .any(|l| l.starts_with("EXPOSE") && l.contains(&format!(" {port}/tcp")))
    );
    assert!(compose.contains_key("TELENODE_TLS_CERT"));
    // The secret comes from a compose secret, never an inline value.
    assert_eq!(
        compose["TELENODE_TURN_SECRET_FILE"],
        "/run/secrets/turn_secret"
    );
    assert!(COMPOSE.contains("      - turn_secret"));
    assert!(COMPOSE.contains("file: ./secrets/turn_secret"));
}

#[test]
fn no_secret_is_inline_in_compose() {
    for line in COMPOSE.lines() {
        let l = line.to_lowercase();
        if l.contains("secret") || l.contains("password") || l.contains("key") {
            assert!(
                !l.contains("=") && !l.contains("begin "),
                "a secret looks inline in docker-compose.yml: {line}"
            );
        }
    }
}

#[test]
fn systemd_unit_command_line_parses() {
    let exec = UNIT
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let args: Vec<&str> = exec.split_whitespace().collect();
    assert!(args[0].ends_with("/telenode"));
    let mut argv = vec!["telenode"];
    argv.extend(&args[1..]);
    <Cli as clap::Parser>::try_parse_from(argv).expect("the unit's command line parses");
    for must in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "User=telenode",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
    ] {
        assert!(UNIT.contains(must), "unit has {must}");
    }
}

#[test]
fn dockerfile_builds_in_one_stage_and_runs_unprivileged_in_another() {
    let froms: Vec<&str> = DOCKERFILE
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(
        froms.len(),
        2,
        "a build stage and a runtime stage: {froms:?}"
    );
    assert!(froms[0].ends_with(" AS build") && froms[1].ends_with(" AS runtime"));
    let runtime = &DOCKERFILE[DOCKERFILE.find(froms[1]).expect("runtime stage")..];
    // The runtime stage takes only the binary from the build stage.
    let copies: Vec<&str> = runtime.lines().filter(|l| l.starts_with("COPY")).collect();
    assert_eq!(
        copies,
        ["COPY --from=build /src/target/release/telenode /usr/local/bin/telenode"]
    );
    assert!(
        runtime.lines().any(|l| l == "USER telenode"),
        "runs as a non-root user"
    );
    assert!(
        !runtime.contains("-dev"),
        "no build packages in the runtime image"
    );
}

#[test]
fn runtime_image_has_every_library_the_binary_links() {
    // Shared libraries of the binary (the same features as the release build)
    // and the Debian package that ships each in the runtime stage.
    let out = std::process::Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_telenode"))
        .output()
        .expect("ldd runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let base = [
        "linux-vdso",
        "ld-linux",
        "libc.so",
        "libm.so",
        "libgcc_s.so",
        "libpthread",
        "libdl.so",
        "librt.so",
    ];
    let packaged = [("libvpx.so.7", "libvpx7"), ("libasound.so.2", "libasound2")];
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or_default();
        let lib = first.rsplit('/').next().unwrap_or_default();
        if lib.is_empty() || base.iter().any(|b| lib.starts_with(b)) {
            continue;
        }
        let Some((_, package)) = packaged.iter().find(|(l, _)| lib.starts_with(l)) else {
            panic!("the binary links {lib}, which the runtime image does not install");
        };
        assert!(
            DOCKERFILE.contains(package),
            "runtime stage installs {package} for {lib}"
        );
    }
}
