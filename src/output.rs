//! Writing to stdout and stderr without ever panicking: output into a closed pipe
//! (`groundwork drift --json ENV | head`) is dropped quietly and the command carries on, so an apply
//! whose reader went away still finishes, releases its lock and exits with its own status.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);
static NO_COLOR: AtomicBool = AtomicBool::new(false);

/// `-q`: no progress bars or spinners (results are still printed).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// `--no-color`: as NO_COLOR does.
pub fn set_no_color(no_color: bool) {
    NO_COLOR.store(no_color, Ordering::Relaxed);
}

pub fn no_color() -> bool {
    NO_COLOR.load(Ordering::Relaxed)
}

/// Write to stdout; a closed or failing stdout is ignored. Progress bars step aside while it is written.
pub fn stdout(text: &str) {
    bars().suspend(|| {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    })
}

/// Write to stderr; a closed or failing stderr is ignored. Progress bars step aside while it is written.
pub fn stderr(text: &str) {
    bars().suspend(|| {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    })
}

/// Every progress bar and spinner of the run is drawn through this one `MultiProgress`, so that output
/// and log lines written meanwhile (through `stdout`, `stderr` and `LogWriter`) appear above the bars
/// instead of tearing them.
pub fn bars() -> &'static indicatif::MultiProgress {
    static BARS: std::sync::OnceLock<indicatif::MultiProgress> = std::sync::OnceLock::new();
    BARS.get_or_init(indicatif::MultiProgress::new)
}

/// Whether bars and spinners are drawn at all: stderr is a terminal and `-q` was not given.
pub fn show_progress() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && !quiet()
}

/// A bar of the run (hidden when progress is not shown).
pub fn add_bar(bar: indicatif::ProgressBar) -> indicatif::ProgressBar {
    if show_progress() {
        bars().add(bar)
    } else {
        indicatif::ProgressBar::hidden()
    }
}

/// The tracing subscriber's writer: each log line is written with the bars suspended.
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        bars().suspend(|| std::io::stderr().lock().write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        bars().suspend(|| std::io::stderr().lock().write_all(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter
    }
}

/// A spinner that appears only if the work takes longer than `after` (a quick refresh shows nothing);
/// cleared when dropped.
pub struct DelayedSpinner {
    bar: indicatif::ProgressBar,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl DelayedSpinner {
    pub fn new(message: &str, after: std::time::Duration) -> Self {
        if !show_progress() {
            return DelayedSpinner { bar: indicatif::ProgressBar::hidden(), task: None };
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(message.to_string());
        let shown = bar.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let shown = bars().add(shown);
            shown.enable_steady_tick(std::time::Duration::from_millis(120));
        });
        DelayedSpinner { bar, task: Some(task) }
    }
}

impl Drop for DelayedSpinner {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        self.bar.finish_and_clear();
        bars().remove(&self.bar);
    }
}

/// `print!` that never panics.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::stdout(&format!($($arg)*)) };
}

/// `println!` that never panics.
#[macro_export]
macro_rules! outln {
    () => { $crate::output::stdout("\n") };
    ($($arg:tt)*) => { $crate::output::stdout(&format!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that never panics.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::output::stderr(&format!("{}\n", format_args!($($arg)*))) };
}
