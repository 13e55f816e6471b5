//! Every input a fuzz target ever crashed on (`fuzz/regressions/<target>/`), and every seed the
//! targets start from (`fuzz/seeds/<target>/`, captured from a real cluster), through the same
//! entry points the fuzz targets call: none may panic. The fuzzers themselves run with
//! `make fuzz` / `make fuzz-short`.
use std::path::Path;

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("frame", rmq::fuzzing::frames),
    ("json_header", rmq::fuzzing::json_header),
    ("binary_header", rmq::fuzzing::binary_header),
    ("route", rmq::fuzzing::route_json),
    ("stored_message", rmq::fuzzing::stored_messages),
    ("broker_request", rmq::fuzzing::broker_request),
];

/// Runs every file of `fuzz/<dir>/<target>/` through its target; the count of files run.
fn run_all(dir: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(dir);
    let mut count = 0;
    for (name, target) in TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: {} panics", path.display());
            count += 1;
        }
    }
    count
}

#[test]
fn crashing_inputs_found_by_fuzzing_are_handled() {
    assert!(run_all("regressions") > 0, "no regression inputs found");
}

#[test]
fn captured_seeds_go_through_every_target() {
    assert!(run_all("seeds") >= 50, "the captured seeds are missing");
}

/// The seeds are real traffic: they decode (not only "do not panic").
#[test]
fn captured_seeds_decode() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for entry in std::fs::read_dir(root.join("frame")).unwrap() {
        let path = entry.unwrap().path();
        let mut buf = bytes::BytesMut::from(&std::fs::read(&path).unwrap()[..]);
        let cmd = rmq::remoting::codec::decode_frame(&mut buf)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .unwrap_or_else(|| panic!("{}: incomplete", path.display()));
        assert!(buf.is_empty(), "{}", path.display());
        assert!(cmd.code >= 0, "{}", path.display());
    }
    for entry in std::fs::read_dir(root.join("stored_message")).unwrap() {
        let path = entry.unwrap().path();
        let body = bytes::Bytes::from(std::fs::read(&path).unwrap());
        let msgs = rmq::protocol::message::decode_stored_messages(body)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!msgs.is_empty(), "{}", path.display());
        for m in msgs {
            assert!(
                m.message.topic().starts_with("FuzzSeed"),
                "{}",
                path.display()
            );
            assert_eq!(m.message.tags(), Some("TagSeed"), "{}", path.display());
        }
    }
    for name in [
        "route_standard.json",
        "route_fastjson.json",
        "route_tbw102.json",
    ] {
        let body = std::fs::read(root.join("route").join(name)).unwrap();
        let route = rmq::protocol::route::TopicRouteData::from_json(&body).unwrap();
        assert!(route.broker_datas[0].master_addr().is_some(), "{name}");
    }
}
