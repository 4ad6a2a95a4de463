//! Writing analysts' events to the embedded pipeline's JSON-lines files.

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::Path;

/// Appends `lines` to the JSON-lines file `path` (made if missing), each a
/// line of its own, in one write: a file whose last line has no line break
/// gets one first.
pub fn append_lines(path: &Path, lines: &[String]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let unterminated = {
        let mut last = [b'\n'];
        let mut reader = std::fs::File::open(path)?;
        if reader.seek(SeekFrom::End(0))? > 0 {
            reader.seek(SeekFrom::End(-1))?;
            reader.read_exact(&mut last)?;
        }
        last[0] != b'\n'
    };
    let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum::<usize>() + 1);
    if unterminated {
        text.push('\n');
    }
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    file.write_all(text.as_bytes())
}
