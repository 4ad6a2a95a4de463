//! Fuzzing what a producer or a deployer hands weir: input events, the
//! embedded input reader (records around and far over the size limit),
//! manifests, case files, rule components, ONNX models, and rules directories whose
//! package files may be links, pipes, directories or sparse files. A target
//! must never panic (nor hang), whatever the bytes; refusing them with an
//! error is the right answer.
//!
//! Each target runs its committed corpus (`fuzz/corpus/<target>/`, which
//! includes every input that once failed, kept as a regression case), then
//! mutations of it (bit flips, interesting bytes, insertions, deletions,
//! repetitions, splices, dictionary tokens, numbers swapped for boundary
//! values) from a seeded generator for a
//! bounded time: `WEIR_FUZZ_SECS` per target (default 3), seed
//! `WEIR_FUZZ_SEED` (default: from the clock, printed). An input that
//! panics is written to `target/fuzz-failures/<target>-<seed>-<n>` and the
//! test fails naming it; fix the cause and move the file into the corpus.
//! `scripts/fuzz.sh` runs longer.
//!
//! This is a mutation fuzzer on stable Rust without coverage feedback (no
//! libFuzzer): it finds what nearby inputs break, not deep paths.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use weir::engine::{Engine, Evaluator, Policy, RuleSet};
use weir::manifest::RuleSpec;
use weir::state::AccountState;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(target))
        .unwrap_or_else(|e| panic!("the corpus of {target}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// Tokens worth inserting into text formats.
const DICTIONARY: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"=",
    b"\n",
    b"\\u0000",
    b"\\",
    b"null",
    b"true",
    b"-",
    b"1e309",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"18446744073709551616",
    b"0.5",
    b"\xff\xfe",
    b"\xe2\x80\xae",
    b"[[case]]",
    b"[limits]",
    b"[params]",
    b"after_secs",
    b"amount",
    b"fuel",
    b"state_kib",
    b"component",
    b"../",
    b"occurred_at",
    b"2026-11-28T19:42:07Z",
    b"9999-12-31T23:59:59Z",
    b"schema_version",
];

/// Numbers at the edges of integer types and of what weir accepts.
const INTERESTING_NUMBERS: &[&[u8]] = &[
    b"0",
    b"1",
    b"-1",
    b"255",
    b"256",
    b"65536",
    b"2147483647",
    b"2147483648",
    b"4294967296",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"18446744073709551615",
    b"1e308",
    b"-0",
];

fn mutate(rng: &mut ChaCha8Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let len = out.len();
        let at = if len == 0 { 0 } else { rng.random_range(0..len) };
        match rng.random_range(0..9) {
            0 if len > 0 => out[at] ^= 1 << rng.random_range(0..8),
            1 if len > 0 => out[at] = [0u8, 0x7f, 0x80, 0xff, b'9', b'"'][rng.random_range(0..6)],
            2 => {
                let n = rng.random_range(1..=8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                out.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let end = (at + rng.random_range(1..=16)).min(len);
                out.drain(at..end);
            }
            4 if len > 0 => {
                let end = (at + rng.random_range(1..=32)).min(len);
                let piece = out[at..end].to_vec();
                for _ in 0..rng.random_range(1..=64) {
                    out.splice(at..at, piece.iter().copied());
                }
            }
            7 => {
                // A number in the text replaced by one at a boundary.
                let digits: Vec<usize> = (0..len).filter(|&i| out[i].is_ascii_digit()).collect();
                if let Some(&start) = digits.get(rng.random_range(0..digits.len().max(1))) {
                    let end = (start..len).find(|&i| !out[i].is_ascii_digit()).unwrap_or(len);
                    let number = INTERESTING_NUMBERS[rng.random_range(0..INTERESTING_NUMBERS.len())];
                    out.splice(start..end, number.iter().copied());
                }
            }
            5 => {
                let other = &corpus[rng.random_range(0..corpus.len())];
                if !other.is_empty() {
                    let from = rng.random_range(0..other.len());
                    let to = (from + rng.random_range(1..=64)).min(other.len());
                    out.splice(at..at, other[from..to].iter().copied());
                }
            }
            _ => {
                let token = DICTIONARY[rng.random_range(0..DICTIONARY.len())];
                out.splice(at..at, token.iter().copied());
            }
        }
    }
    out
}

/// Runs `target` on the corpus, then on mutations for the time budget;
/// panics naming the saved input if any call panicked.
fn fuzz(name: &str, corpus: Vec<Vec<u8>>, target: impl Fn(&[u8])) {
    let secs = std::env::var("WEIR_FUZZ_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let seed = std::env::var("WEIR_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    });
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let run = |input: &[u8], n: u64| {
        if std::panic::catch_unwind(AssertUnwindSafe(|| target(input))).is_err() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-failures");
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("{name}-{seed}-{n}"));
            std::fs::write(&file, input).unwrap();
            panic!("fuzz target {name} panicked (seed {seed}); the input is in {}", file.display());
        }
    };
    for (i, input) in corpus.iter().enumerate() {
        run(input, i as u64);
    }
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(secs) {
        let base = &corpus[rng.random_range(0..corpus.len())];
        let input = mutate(&mut rng, base, &corpus);
        run(&input, corpus.len() as u64 + n);
        n += 1;
    }
    eprintln!("fuzz {name}: {} corpus inputs, {n} mutations in {secs} s, seed {seed}", corpus.len());
}

#[test]
fn input_events() {
    fuzz("events", corpus("events"), |bytes| {
        if let Ok(weir::events::InputEvent::Transaction(tx)) =
            weir::events::parse_input(bytes, weir::events::MAX_EVENT_BYTES)
        {
            // What weir does next with a valid event must not panic either.
            let mut out = Vec::new();
            tx.encode_for_rules(weir::events::HostFacts::default(), &mut out);
            let _ = tx.to_past();
            let json = serde_json::to_vec(&tx).unwrap();
            assert!(weir::events::parse_transaction(&json, usize::MAX).is_ok(), "a parsed event reparses");
        }
    });
}

#[test]
fn manifests() {
    fuzz("manifest", corpus("manifest"), |bytes| {
        let _ = RuleSpec::parse(&String::from_utf8_lossy(bytes));
    });
}

#[test]
fn case_files() {
    fuzz("cases", corpus("cases"), |bytes| {
        if let Ok(file) = toml::from_str::<weir::cases::CaseFile>(&String::from_utf8_lossy(bytes)) {
            for case in &file.cases {
                let _ = case.transaction.to_event("t");
                for prior in &case.prior {
                    let _ = prior.to_event("p");
                }
            }
        }
    });
}

/// ONNX models: small exported ones (LightGBM, a forest with its ZipMap,
/// a regressor, an MLP), mutated, loaded by the reader rules use and, when
/// they load, scored and explained on rows of zeros, NaNs and extremes.
#[test]
fn models() {
    fuzz("model", corpus("model"), |bytes| {
        if let Ok(model) = weir_sdk::model::Model::load(bytes) {
            let n = model.features();
            for value in [0.0, f32::NAN, f32::MAX, -f32::INFINITY, 1.5] {
                let row = vec![value; n];
                let _ = model.run(&row, |out| out.len());
                let _ = model.score(&row);
                let _ = model.top_contributions(&row, 3);
            }
            let _ = model.score(&[]);
        }
    });
}

/// Components: the shipped rules and the test guests, mutated, loaded by
/// the engine and, when they load, run on a transaction.
#[test]
fn components() {
    let engine = Engine::new().unwrap();
    let names = ["velocity", "large-amount", "hostile", "legacy-v1"];
    let corpus: Vec<Vec<u8>> = names.iter().map(|n| crate::util::guest(n)).collect();
    let manifest = "[rule]\nid = \"fuzzed\"\nversion = \"1\"\n[limits]\nfuel = 100000\nmemory_mib = 8\n";
    let spec = RuleSpec::parse(manifest).unwrap();
    fuzz("component", corpus, |bytes| {
        if let Ok(rule) = engine.load(spec.clone(), bytes, manifest) {
            let mut ev = Evaluator::new(&RuleSet::new(vec![rule]).unwrap(), Policy::default());
            let _ = ev.decide(&crate::util::tx("t", 0), &mut AccountState::default(), crate::util::position(0));
        }
    });
}

/// What stands where a package file belongs, chosen by one byte of the
/// input (an ASCII digit, or any byte modulo 10).
#[derive(Debug, Clone, Copy)]
enum Entry {
    Regular,
    Empty,
    Missing,
    LinkToSecret,
    LinkToStdin,
    LinkToDevZero,
    Fifo,
    Directory,
    /// A sparse file far over every cap (20 GiB; it costs no disk).
    Sparse,
    DanglingLink,
}

impl Entry {
    fn of(byte: u8) -> Entry {
        let n = if byte.is_ascii_digit() { byte - b'0' } else { byte % 10 };
        [
            Entry::Regular,
            Entry::Empty,
            Entry::Missing,
            Entry::LinkToSecret,
            Entry::LinkToStdin,
            Entry::LinkToDevZero,
            Entry::Fifo,
            Entry::Directory,
            Entry::Sparse,
            Entry::DanglingLink,
        ][usize::from(n)]
    }

    /// Makes this entry at `path` (unless something is there already).
    fn make(self, path: &Path, content: &[u8], secret: &Path) {
        if std::fs::symlink_metadata(path).is_ok() {
            return;
        }
        let link = |to: &Path| std::os::unix::fs::symlink(to, path).unwrap();
        match self {
            Entry::Regular => std::fs::write(path, content).unwrap(),
            Entry::Empty => std::fs::write(path, b"").unwrap(),
            Entry::Missing => {}
            Entry::LinkToSecret => link(secret),
            Entry::LinkToStdin => link(Path::new("/proc/self/fd/0")),
            Entry::LinkToDevZero => link(Path::new("/dev/zero")),
            Entry::Fifo => crate::rules_files::mkfifo(path),
            Entry::Directory => std::fs::create_dir(path).unwrap(),
            Entry::Sparse => std::fs::File::create(path).unwrap().set_len(20 << 30).unwrap(),
            Entry::DanglingLink => link(&path.with_extension("nowhere")),
        }
    }
}

/// The rules-directory reader ([`weir::packages::manifests`],
/// [`weir::packages::PackageFiles::read`]) on a directory whose package
/// files are any mix of regular files with fuzzed content, empty files,
/// links (to a secret, to stdin, to `/dev/zero`, to nothing), named pipes,
/// directories and sparse files over the caps. The input's first four
/// bytes choose what stands as the manifest, the component, the cases and
/// the signature; the rest is their content. It must never hang (each
/// directory is read on a worker, given 10 s), never panic, and every
/// refusal is at most `REFUSAL_TEXT_MAX` bytes, without control characters
/// and without the secret.
#[test]
fn rules_directory() {
    use weir::packages::{FileProblem, PackageFiles, REFUSAL_TEXT_MAX, Refusal, manifests};
    const SECRET: &str = "weir-fuzz-secret-line";
    let root = crate::util::tempdir();
    let secret = root.path().join("secret");
    std::fs::write(&secret, format!("{SECRET}:$6$x:19000:0:99999:7:::\n")).unwrap();

    let (work, jobs) = std::sync::mpsc::channel::<PathBuf>();
    let (done, results) = std::sync::mpsc::channel::<Vec<String>>();
    // The reader runs on its own thread so that a hang is a failure, not a
    // test that never ends.
    std::thread::spawn(move || {
        for dir in jobs {
            let mut texts = Vec::new();
            for manifest in manifests(&dir).unwrap() {
                match PackageFiles::read(&manifest) {
                    Ok(package) => {
                        let _ = package.changed_within(Duration::from_millis(200));
                        if let Some((path, text)) = &package.cases
                            && let Err(e) = toml::from_str::<weir::cases::CaseFile>(text)
                        {
                            let error = weir::manifest::toml_error_text(&e, text);
                            texts.push(Refusal::CasesFile { path: path.clone(), error }.to_string());
                        }
                    }
                    Err(refusal) => {
                        if let Refusal::Unreadable { problem: FileProblem::Io(_), .. } = &refusal {
                            panic!("an unexpected error reading a package file: {refusal}");
                        }
                        texts.push(refusal.to_string());
                    }
                }
            }
            if done.send(texts).is_err() {
                return;
            }
        }
    });

    let n = std::cell::Cell::new(0u64);
    let mut corpus = corpus("rules-dir");
    corpus.retain(|c| c.len() >= 4);
    fuzz("rules-dir", corpus, |bytes| {
        let kinds: Vec<Entry> = bytes.iter().take(4).map(|b| Entry::of(*b)).collect();
        let [manifest_kind, component_kind, cases_kind, sig_kind] = kinds[..] else { return };
        let content = &bytes[4..];
        n.set(n.get() + 1);
        let dir = root.path().join(n.get().to_string());
        std::fs::create_dir(&dir).unwrap();
        let manifest = dir.join("pkg.toml");
        let component = RuleSpec::parse(&String::from_utf8_lossy(content))
            .map_or_else(|_| "pkg.wasm".to_owned(), |spec| spec.component);
        manifest_kind.make(&manifest, content, &secret);
        cases_kind.make(&dir.join("pkg.cases.toml"), content, &secret);
        sig_kind.make(&dir.join("pkg.sig"), &content[..content.len().min(200)], &secret);
        component_kind.make(&dir.join(component), content, &secret);

        work.send(dir.clone()).unwrap();
        let texts = results.recv_timeout(Duration::from_secs(10)).expect("the reader finished within 10 s");
        for text in texts {
            assert!(text.len() <= REFUSAL_TEXT_MAX, "a refusal of {} bytes: {text}", text.len());
            assert!(!text.chars().any(char::is_control), "control characters in a refusal: {text:?}");
            assert!(!text.contains(SECRET), "a refusal quotes the secret: {text}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

/// The input reader's size limit in its target.
const READER_LIMIT: usize = 1024;
/// What a dead letter may add to its payload: the reason (1 KiB, JSON
/// escaping at most doubles it), the input position, the field names.
const DEAD_LETTER_ENVELOPE: usize = 2 * weir::events::MAX_REASON_BYTES + 512;

/// A fuzz input made into reader input: a line holding `\x1e` and a digit
/// stands for the bytes before the marker repeated to a size the digit picks
/// — around the limit (0–4), over it (5, 6) or far over it (7–9) — followed
/// by the bytes after the digit. So a saved failure reproduces as it is.
fn expand_sizes(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for (i, piece) in bytes.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        match piece.iter().position(|&b| b == 0x1e) {
            Some(at) if at > 0 && piece.get(at + 1).is_some_and(u8::is_ascii_digit) => {
                let size = match piece[at + 1] - b'0' {
                    d @ 0..=4 => READER_LIMIT + usize::from(d) - 1,
                    5 => 2 * READER_LIMIT,
                    6 => (64 << 10) + READER_LIMIT,
                    7 => 200 << 10,
                    8 => 1 << 20,
                    _ => 4 << 20,
                };
                out.extend(piece[..at].iter().cycle().take(size));
                out.extend_from_slice(&piece[at + 2..]);
            }
            _ => out.extend_from_slice(piece),
        }
    }
    out
}

/// The embedded input reader over records of every size around and far
/// over its limit, with and without newlines, with control bytes and bytes
/// that are not UTF-8: no panic; every line that is not blank is decided,
/// dead-lettered (with its line number and size, and a prefix of it) or a
/// confirmation; no dead letter is more than 1.5 times its payload plus a
/// bounded envelope.
#[test]
fn input_reader() {
    use weir::events::{DeadLetter, DecisionEvent};
    use weir::pipeline::{OutputPaths, PipelineOptions, run_embedded};

    let engine = Engine::new().unwrap();
    let rules = RuleSet::new(weir::packages::load_shipped(&engine).unwrap()).unwrap();
    let evaluator = std::cell::RefCell::new(Evaluator::new(&rules, Policy::default()));
    let opts = PipelineOptions {
        batch_size: 100_000,
        max_event_bytes: READER_LIMIT,
        input_name: "fuzz".to_owned(),
        ..PipelineOptions::default()
    };
    fuzz("input-reader", corpus("input-reader"), |bytes| {
        let input = expand_sizes(bytes);
        // The lines as the reader sees them: `\n` ends one, `\r\n` too, the
        // last may lack it; a blank line within the limit is no record.
        let mut lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        if input.last() == Some(&b'\n') || input.is_empty() {
            lines.pop();
        }
        let lines: Vec<&[u8]> = lines.into_iter().map(|l| l.strip_suffix(b"\r").unwrap_or(l)).collect();
        let is_record = |l: &[u8]| l.len() > READER_LIMIT || !l.iter().all(u8::is_ascii_whitespace);
        let records = lines.iter().filter(|l| is_record(l)).count() as u64;

        let dir = crate::util::tempdir();
        let out = OutputPaths::in_dir(dir.path());
        let summary = run_embedded(input.as_slice(), &mut evaluator.borrow_mut(), &out, &opts, |_| {})
            .expect("bad input never stops the pipeline");
        assert_eq!(summary.records, records, "every line that is not blank is a record");
        assert_eq!(
            summary.decided() + summary.dead_letters + summary.confirmations + summary.duplicates,
            records,
            "every record is accounted for"
        );
        let decisions: Vec<DecisionEvent> = weir_testkit::jsonl(&out.decisions);
        assert_eq!(decisions.len() as u64, summary.decided());
        let written = std::fs::read_to_string(&out.dead_letters).unwrap();
        assert_eq!(written.lines().count() as u64, summary.dead_letters);
        let mut seen = std::collections::HashSet::new();
        for d in &decisions {
            let line = lines[d.input.offset as usize - 1];
            assert!(is_record(line) && seen.insert(d.input.offset), "a decision names its own line");
        }
        for text in written.lines() {
            let letter: DeadLetter = serde_json::from_str(text).unwrap();
            let line = lines[letter.input.offset as usize - 1];
            assert!(is_record(line) && seen.insert(letter.input.offset), "a dead letter names its own line");
            assert_eq!(letter.payload_bytes, line.len() as u64, "the line's size, newline excluded");
            assert_eq!(letter.truncated, line.len() > READER_LIMIT);
            let kept = match (&letter.payload, &letter.payload_base64) {
                (Some(text), None) => text.as_bytes().to_vec(),
                (None, Some(encoded)) => crate::pipeline::unbase64(encoded),
                other => panic!("exactly one payload: {other:?}"),
            };
            assert!(line.starts_with(&kept), "the payload is the line or its start");
            assert!(kept.len() == line.len() || kept.len() + 4 > READER_LIMIT.min(64 << 10), "the prefix is capped");
            assert!(
                text.len() <= kept.len() * 3 / 2 + 4 + DEAD_LETTER_ENVELOPE,
                "a dead letter of {} bytes for {} bytes kept",
                text.len(),
                kept.len()
            );
        }
    });
}
