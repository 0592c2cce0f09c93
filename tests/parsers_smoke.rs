//! A fuzz smoke run on stable Rust: every parser of actual state (and the environment loader) gets
//! thousands of mutated versions of real inputs and must return, never panic. Deterministic seed.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    "(",
    ")",
    "{",
    "}",
    ";",
    "\"",
    "'",
    "\n",
    "\t",
    " ",
    "@",
    "$ORIGIN",
    "$TTL",
    "IN",
    "SOA",
    "PTR",
    "host",
    "server",
    "backend",
    "@@ZONE",
    "@@SVC",
    "@@MISSING",
    "fcontext",
    "-a",
    "-t",
    "#",
    "\\",
    "é",
    "\u{0}",
    ":",
    ",",
    "-",
    "999999999999",
    "Would relabel ",
    " from ",
    " to ",
    "<port ",
    "port=\"",
    "protocol=\"",
];

/// Byte-level and token-level mutations of a seed text.
fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut s: Vec<char> = seed.chars().collect();
    for _ in 0..=rng.below(8) {
        match rng.below(4) {
            0 if !s.is_empty() => {
                let i = rng.below(s.len());
                s.remove(i);
            }
            1 => {
                let i = rng.below(s.len() + 1);
                let t: Vec<char> = TOKENS[rng.below(TOKENS.len())].chars().collect();
                s.splice(i..i, t);
            }
            2 if s.len() > 2 => {
                let a = rng.below(s.len());
                let b = (a + rng.below(64)).min(s.len());
                s.drain(a..b);
            }
            _ => {
                let i = rng.below(s.len() + 1);
                s.insert(i, char::from_u32(rng.below(0x250) as u32).unwrap_or('x'));
            }
        }
    }
    s.into_iter().collect()
}

fn seeds(dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "snap") {
            out.push(std::fs::read_to_string(p).unwrap());
        }
    }
    out
}

const ROUNDS: usize = 3000;

#[test]
fn state_parsers_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut inputs = seeds("tests/snapshots");
    inputs.push("@@ZONE public runtime\n  services: ssh http\n  ports: 1/tcp\n@@SVC x\n<service><port port=\"1\" protocol=\"tcp\"/></service>\n".into());
    inputs.push("fcontext -a -f a -t t -r 's0' '/srv(/.*)?'\nboolean -m -1 b\nport -a -t t -r 's0' -p tcp 1\n".into());
    inputs.push("Would relabel /a from x:y:z:s0 to u:r:t:s0\n".into());
    inputs.push("SELinux Port Type Proto Port Number\nhttp_port_t tcp 80, 81-90\n".into());
    inputs.push("# pxname,svname,status\napi,m1,UP\n".into());
    // busctl's JSON of firewalld zone settings, and a live object with managedFields.
    inputs.push(
        "@@ZONEJSON public runtime\n{\"type\":\"a{sv}\",\"data\":[{\"services\":{\"type\":\"as\",\"data\":[\"ssh\"]},\"ports\":{\"type\":\"a(ss)\",\"data\":[[\"6443\",\"tcp\"]]}}]}\n"
            .into(),
    );
    inputs.push(
        "{\"metadata\":{\"managedFields\":[{\"manager\":\"groundwork\",\"operation\":\"Apply\",\"fieldsV1\":{\"f:spec\":{\"f:replicas\":{}}}}]},\"spec\":{\"replicas\":2}}"
            .into(),
    );
    // A whole batched read (the per-file form): one file, one digest, two query outputs.
    let batch = "P\nF 3\nabc@@META\nF 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 4 644\n@@EXEC\nX 0\nE not run\nok\n@@c0ffee\n\n@@c0ffee\n\n@@CAPS yes yes\n";
    let paths: Vec<String> = (0..2).map(|i| format!("/p{i}")).collect();
    let parsed =
        groundwork::transport::ssh::parse_batch_output(&paths[..1], &paths[1..], 2, "c0ffee", batch.as_bytes())
            .expect("the seed batch parses");
    assert_eq!((parsed.contents.len(), parsed.digests.len(), parsed.outputs.len()), (1, 1, 2));
    inputs.push(batch.into());
    let facts = groundwork_cluster::csr::parse_request(CSR.as_bytes()).expect("the seed CSR parses");
    assert_eq!(facts.common_names, ["system:node:w1.lab.example.test"]);
    inputs.push(CSR.into());
    for round in 0..ROUNDS {
        let seed = &inputs[round % inputs.len()];
        let text = mutate(&mut rng, seed);
        let _ = groundwork_bind::zone::parse(&text, "lab.example.test");
        let _ = groundwork_dhcpd::parse_pins(&text);
        let _ = groundwork_kea::parse_reservations(&text);
        let _ = groundwork_dhcpd::read_conf(&text);
        let _ = groundwork_kea::read_boot_files(&text);
        let _ = groundwork_haproxy::servers(&text);
        let _ = groundwork_haproxy::read_config(&text);
        let _ = groundwork_files::read_ipxe(&text);
        let _ = groundwork_haproxy::parse_show_stat(&text);
        let _ = groundwork_firewalld::parse_snapshot(&text);
        let _ = groundwork_firewalld::parse_service_xml("x", &text);
        let _ = groundwork_selinux::parse_export(&text);
        let _ = groundwork_selinux::parse_boolean_list(&text);
        let _ = groundwork_selinux::parse_port_list(&text, &[("tcp".into(), 80), ("tcp".into(), 85)]);
        let _ = groundwork_selinux::parse_relabel(&text);
        let _ = groundwork_selinux::regex_base(&text);
        let paths: Vec<String> = (0..3).map(|i| format!("/p{i}")).collect();
        let _ = groundwork::transport::ssh::parse_read_output(&paths, text.as_bytes());
        let _ = groundwork::transport::ssh::parse_meta_output(&paths, &text);
        let _ = groundwork::transport::ssh::parse_batch_output(&paths[..1], &paths[1..], 2, "c0ffee", text.as_bytes());
        let _ = groundwork_cluster::csr::parse_request(text.as_bytes());
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            let _ = groundwork_cluster::objects::owned_paths(&v, "groundwork");
            let _ = groundwork_cluster::objects::released(&v, &v, "groundwork");
            let _ = groundwork_cluster::objects::field_details(&v, &groundwork_cluster::objects::project(&v, &v));
        }
    }
}

/// A kubelet-shaped serving CSR (openssl, P-256) as the CSR parser's seed; the test checks it parses.
const CSR: &str = "-----BEGIN CERTIFICATE REQUEST-----
MIIBMjCB2gIBADBBMSgwJgYDVQQDDB9zeXN0ZW06bm9kZTp3MS5sYWIuZXhhbXBs
ZS50ZXN0MRUwEwYDVQQKDAxzeXN0ZW06bm9kZXMwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAQTyKXQJNrlM8tYChJlqaEg1zNEVE2pjZOWasgFAY8MftlU/p0kg2CW
eN0D/pzeirrnrZRdWw7JKQRWq1dVKayPoDcwNQYJKoZIhvcNAQkOMSgwJjAkBgNV
HREEHTAbghN3MS5sYWIuZXhhbXBsZS50ZXN0hwQKWAEfMAoGCCqGSM49BAMCA0cA
MEQCIFhvySjm0I77Ur18DnHyWxUsZefJLZwRYH/AQjb0avLRAiBlA+f0ThqmHUqf
5oHktolyHJTVbnQ5KjG1O+DQa8gVwQ==
-----END CERTIFICATE REQUEST-----
";

#[test]
fn the_environment_loader_never_panics_and_locates_its_errors() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let seeds: Vec<String> = ["environment.yaml", "nodes.yaml", "services.yaml"]
        .iter()
        .map(|f| std::fs::read_to_string(format!("environments/ocp45/{f}")).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    for f in ["installdir", "images"] {
        let src = std::path::Path::new("environments/ocp45").join(f);
        std::fs::create_dir_all(dir.path().join(f)).unwrap();
        for e in std::fs::read_dir(&src).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.path().join(f).join(e.file_name())).unwrap();
        }
    }
    let mut located = 0;
    for round in 0..600 {
        let which = round % 3;
        for (i, f) in ["environment.yaml", "nodes.yaml", "services.yaml"].iter().enumerate() {
            let text = if i == which { mutate(&mut rng, &seeds[i]) } else { seeds[i].clone() };
            std::fs::write(dir.path().join(f), text).unwrap();
        }
        match groundwork::config::load_valid(dir.path()) {
            Ok(_) => {}
            Err(groundwork::config::ConfigError::Syntax(s)) => {
                assert!(s.line >= 1 && s.column >= 1, "{s}");
                located += 1;
            }
            Err(_) => {}
        }
    }
    assert!(located > 0, "mutations produced no syntax error at all: the smoke run is not exercising the loader");
}
