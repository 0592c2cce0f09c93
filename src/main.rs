use clap::Parser;
use groundwork::cli::{Cli, Command, RenderWhat};
use groundwork::ops;
use std::process::ExitCode;

fn init_tracing(verbose: u8, quiet: bool) {
    // kube-client logs every refused connection as an error; while a gate waits for the API that is
    // expected, and the gate's status already says it.
    let default = match verbose {
        _ if quiet => "error,kube_client=off",
        0 => "warn,kube_client=off",
        1 => "info,kube_client=off",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(groundwork::output::LogWriter)
        .with_target(false)
        .init();
}

fn scope_of(s: groundwork::cli::ScopeArgs) -> ops::Scope {
    ops::Scope { targets: s.targets, excludes: s.excludes }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    Ok(match cli.command {
        Command::Validate { env, format, json } => {
            use groundwork::cli::OutputFormat;
            let format = match (json, format) {
                (true, _) | (_, OutputFormat::Json) => ops::validate::Format::Json,
                (_, OutputFormat::Github) => ops::validate::Format::Github,
                (_, OutputFormat::Text) => ops::validate::Format::Text,
            };
            let (text, code) = ops::validate::run(&env, format)?;
            groundwork::outln!("{text}");
            code
        }
        Command::Plan { env, json, out, detailed_exitcode, scope } => {
            ops::plan::run(&env, &ops::plan::PlanOptions { json, out, detailed_exitcode, scope: scope_of(scope) })
                .await?
        }
        Command::Apply { target, auto_approve, env, lock_timeout, gate_timeout, json, scope } => {
            let opts = ops::apply::ApplyOptions {
                auto_approve,
                env,
                lock_timeout,
                gate_timeout,
                json,
                scope: scope_of(scope),
            };
            ops::apply::run(&target, &opts).await?
        }
        Command::Destroy { env, auto_approve, lock_timeout, json } => {
            let opts = ops::destroy::DestroyOptions { auto_approve, lock_timeout, json };
            ops::destroy::run(&env, &opts).await?
        }
        Command::Drift { env, json, junit, metrics_file, every, listen, heal, lock_timeout, scope } => {
            let opts = ops::drift::DriftOptions {
                json,
                junit,
                metrics_file,
                every,
                listen,
                heal,
                lock_timeout,
                scope: scope_of(scope),
            };
            ops::drift::run(&env, &opts).await?
        }
        Command::Verify { env, json, junit, from } => {
            ops::verify::run(&env, &ops::verify::VerifyOptions { json, junit, from }).await?
        }
        Command::Import { from, out, force } => {
            groundwork::out!("{}", ops::import::run(&from, &out, force).await?.summary());
            ops::EXIT_OK
        }
        Command::ForceUnlock { id, env } => {
            groundwork::outln!("{}", ops::unlock::run(&env, &id).await?);
            ops::EXIT_OK
        }
        Command::Graph { env } => {
            groundwork::out!("{}", ops::graph::run(&env)?);
            ops::EXIT_OK
        }
        Command::Render { what: RenderWhat::InstallConfig { env, out, force } } => {
            groundwork::outln!("{}", ops::render::install_config(&env, &out, force)?);
            ops::EXIT_OK
        }
        Command::Show { file, json } => {
            groundwork::out!("{}", ops::show::run(&file, json)?);
            ops::EXIT_OK
        }
        Command::Manpages { dir } => {
            groundwork::outln!("{}", ops::manpages::write(&dir)?);
            ops::EXIT_OK
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "groundwork", &mut out);
            groundwork::out!("{}", String::from_utf8_lossy(&out));
            ops::EXIT_OK
        }
    })
}

fn main() -> ExitCode {
    // Usage errors exit 1, never clap's default 2: with --detailed-exitcode, 2 means "changes present"
    // and nothing else, so a mistyped flag must never look like a plan with changes.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { ops::EXIT_ERROR } else { ops::EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing(cli.verbose, cli.quiet);
    groundwork::output::set_quiet(cli.quiet);
    groundwork::output::set_no_color(cli.no_color);
    // `-F` is relative to where groundwork runs, unlike the inventory's paths (relative to the environment).
    let ssh_config =
        cli.ssh_config.clone().map(|p| if p.as_os_str() == "none" { p } else { std::path::absolute(&p).unwrap_or(p) });
    groundwork::config::load::set_overrides(groundwork::config::load::Overrides {
        ssh_config,
        kube_context: cli.context.clone(),
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            groundwork::errln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(ops::EXIT_ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            report(e);
            ExitCode::from(ops::EXIT_ERROR)
        }
    }
}

/// Errors with source locations are rendered by miette; the rest as plain messages.
fn report(e: anyhow::Error) {
    match e.downcast::<groundwork::Error>() {
        Ok(groundwork::Error::Config(c)) => groundwork::errln!("{:?}", miette::Report::new(c)),
        Ok(other) => groundwork::errln!("error: {other}"),
        Err(e) => groundwork::errln!("error: {e:#}"),
    }
}
