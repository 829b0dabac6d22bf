//! The command line (API.md section 6). Every command exits 0 on success,
//! otherwise non-zero with one line on stderr.

use std::io::BufRead;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use diesel::prelude::*;

use crate::clock::Clock;
use crate::config::Settings;
use crate::db::{self, users};
use crate::domain::{Password, Username};
use crate::services::{accounts, admin, keys};
use crate::startup::Application;

#[derive(Debug, Parser)]
#[command(
    name = "keyward",
    version,
    about = "A small, fast authentication server"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate if needed, then serve (the default).
    Serve {
        /// A throw-away instance for other projects' tests: its own fresh
        /// database, dropped at exit (SIGTERM, SIGINT, or stdin closing).
        #[arg(long)]
        ephemeral: bool,
    },
    /// Apply migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Create a user; the password is the first line of standard input.
    Create {
        username: String,
        #[arg(long)]
        admin: bool,
        #[arg(long = "name")]
        display_name: Option<String>,
    },
    /// Ban a user and revoke all their sessions.
    Ban {
        username: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a user's ban.
    Unban { username: String },
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
    /// Revoke every session of a user.
    Revoke {
        #[arg(long)]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Add a new signing key; older keys verify until their tokens expire.
    Rotate,
}

/// Runs the command line and returns the process's exit status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            let line = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("keyward: {}", line.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    match run(cli.command.unwrap_or(Command::Serve { ephemeral: false })) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("keyward: {}", message.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), String> {
    let settings = Settings::load().map_err(|e| e.to_string())?;
    let clock = Clock::system();
    match command {
        Command::Serve { ephemeral: false } => serve(settings, clock),
        Command::Serve { ephemeral: true } => {
            let env: Vec<(String, String)> = std::env::vars().collect();
            crate::ephemeral::serve(settings, Settings::port_is_configured(&env))
        }
        Command::Migrate => db::prepare_database(settings.database.url.expose()),
        Command::Users(cmd) => users_command(cmd, &settings, &clock),
        Command::Sessions(SessionsCommand::Revoke { user }) => {
            let mut conn = connect(&settings)?;
            let user = find_user(&mut conn, &user)?;
            let revoked = admin::revoke_user_sessions(&mut conn, user.id, None, clock.now())
                .map_err(|e| format!("database: {e}"))?;
            println!("revoked {} session(s) of {}", revoked.len(), user.username);
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate) => {
            if settings.auth.jwt_secret.is_some() {
                return Err(
                    "auth.jwt_secret is set: rotate by changing the secret, or unset it to let keyward manage keys"
                        .into(),
                );
            }
            let mut conn = connect(&settings)?;
            let kid = keys::rotate(&mut conn, &settings, clock.now()).map_err(|e| e.to_string())?;
            println!("new signing key {kid}");
            Ok(())
        }
    }
}

fn serve(settings: Settings, clock: Clock) -> Result<(), String> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings, clock)?;
        app.run_until_stopped().await.map_err(|e| e.to_string())
    })
}

fn connect(settings: &Settings) -> Result<PgConnection, String> {
    db::prepare_database(settings.database.url.expose())?;
    PgConnection::establish(settings.database.url.expose()).map_err(|e| format!("database: {e}"))
}

fn find_user(conn: &mut PgConnection, username: &str) -> Result<users::UserRow, String> {
    users::find_by_username(conn, username)
        .map_err(|e| format!("database: {e}"))?
        .ok_or_else(|| format!("no user named {username}"))
}

fn users_command(cmd: UsersCommand, settings: &Settings, clock: &Clock) -> Result<(), String> {
    match cmd {
        UsersCommand::Create {
            username,
            admin,
            display_name,
        } => {
            let username = Username::parse(&username)?;
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
            let line = line.trim_end_matches(['\r', '\n']);
            let password = Password::parse(line, "password (first line of stdin)")?;
            let name = display_name
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty());
            db::prepare_database(settings.database.url.expose())?;
            let pool = db::build_pool(settings)?;
            let user = accounts::register(
                &pool,
                &username,
                &password,
                name.as_deref(),
                admin,
                settings.auth.bcrypt_cost,
                clock.now(),
            )
            .map_err(|e| match e {
                accounts::RegisterError::Taken => format!("username {username} is taken"),
                other => other.to_string(),
            })?;
            println!("created user {} ({})", user.username, user.id);
            Ok(())
        }
        UsersCommand::Ban { username, reason } => {
            let mut conn = connect(settings)?;
            let user = find_user(&mut conn, &username)?;
            let revoked = admin::ban(
                &mut conn,
                user.id,
                None,
                reason.as_deref(),
                None,
                clock.now(),
            )
            .map_err(|e| format!("database: {e}"))?;
            println!(
                "banned {} and revoked {} session(s)",
                user.username,
                revoked.len()
            );
            Ok(())
        }
        UsersCommand::Unban { username } => {
            let mut conn = connect(settings)?;
            let user = find_user(&mut conn, &username)?;
            admin::unban(&mut conn, user.id, None, clock.now())
                .map_err(|e| format!("database: {e}"))?;
            println!("unbanned {}", user.username);
            Ok(())
        }
    }
}
