//! The only place the binary writes to stdout and stderr: JSON results and one-line errors.

use std::io::Write;

use serde::Serialize;

/// Writes `value` as pretty JSON on stdout, followed by a newline.
pub fn emit_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    Ok(())
}

/// Writes a plain text report on stdout (the human-readable bench table).
pub fn emit_text(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    Ok(())
}

/// Writes an error and its causes as one line on stderr.
pub fn report_error(error: &anyhow::Error) {
    let mut line = format!("ddfr: error: {error}");
    for cause in error.chain().skip(1) {
        line.push_str(": ");
        line.push_str(&cause.to_string());
    }
    let _ = writeln!(std::io::stderr().lock(), "{}", line.replace('\n', " "));
}
