//! The command line (API.md section 6). Every command exits 0 on success,
//! otherwise non-zero with one line on stderr.

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use diesel::prelude::*;

use crate::clock::Clock;
use crate::config::Settings;
use crate::db::{self, users};
use crate::domain::{Password, Username};
use crate::services::admin::{self, Actor};
use crate::services::{accounts, key_rotation, lockout, service_registry, session_policy};
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
    /// Manage the credentials of services that verify tokens.
    #[command(subcommand)]
    Services(ServicesCommand),
}

#[derive(Debug, Subcommand)]
enum ServicesCommand {
    /// Create a service; prints its client_id and client_secret (shown once)
    /// as one JSON object.
    Create { name: String },
    /// List the services (never their secrets).
    List,
    /// Delete a service; its secret fails on every instance within a second.
    Delete { name: String },
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
    /// Clear a username's failed sign-ins, ending its lockout at once.
    Unlock { username: String },
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
    /// Revoke every session of a user (--user), or sign everyone out (--all).
    Revoke {
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        user: Option<String>,
        /// Every live session created before --before (default: now).
        #[arg(long)]
        all: bool,
        /// RFC 3339; only with --all.
        #[arg(long, requires = "all")]
        before: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Add a new signing key: published at once, signing after
    /// auth.key_publish_seconds; older keys verify until their tokens expire.
    Rotate {
        /// Sign with the new key at once (or with the key waiting to be
        /// published, if there is one).
        #[arg(long)]
        now: bool,
    },
    /// List the keys: kid, algorithm, state (next, signing, verifying,
    /// revoked), created.
    List {
        /// One JSON document instead of one line per key.
        #[arg(long)]
        json: bool,
    },
    /// Stop a key verifying, on every instance, at once (a leaked key).
    Revoke { kid: String },
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
        Command::Sessions(SessionsCommand::Revoke {
            user: None, before, ..
        }) => {
            let now = clock.now();
            let before = session_policy::parse_before(before.as_deref(), now)?;
            let mut conn = connect(&settings)?;
            let outcome = session_policy::revoke_all(&mut conn, None, before, now)
                .map_err(|e| format!("database: {e}"))?;
            println!(
                "revoked {} session(s) signed in before {}",
                outcome.revoked,
                outcome.auth_before.to_rfc3339()
            );
            Ok(())
        }
        Command::Sessions(SessionsCommand::Revoke {
            user: Some(user), ..
        }) => {
            let mut conn = connect(&settings)?;
            let user = find_user(&mut conn, &user)?;
            let revoked =
                admin::revoke_sessions_of_user(&mut conn, Actor::Operator, user.id, clock.now())
                    .map_err(|e| format!("database: {e}"))?;
            println!("revoked {} session(s) of {}", revoked.len(), user.username);
            Ok(())
        }
        Command::Services(cmd) => services_command(cmd, &settings, &clock),
        Command::Keys(cmd) => keys_command(cmd, &settings, &clock),
    }
}

/// Serves until stopped, then closes the request pool before returning, so
/// that no pool thread is inside libpq while the process exits.
fn serve(settings: Settings, clock: Clock) -> Result<(), String> {
    let (pool, drain, result) = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings, clock)?;
        let (pool, drain) = (app.state().pool.clone(), app.drain());
        let result = app.run_until_stopped().await.map_err(|e| e.to_string());
        Ok::<_, String>((pool, drain, result))
    })?;
    let closed = drain.close(&pool, Duration::from_secs(5));
    log::info!("stopped; closed {closed} database connections");
    drop(pool);
    result
}

/// `keyward keys …`: on the database's keys, never under a configured secret.
fn keys_command(cmd: KeysCommand, settings: &Settings, clock: &Clock) -> Result<(), String> {
    if settings.auth.jwt_secret.is_some() {
        return Err(
            "auth.jwt_secret is set: there are no keys to manage (change the secret, or unset it to let keyward manage keys)"
                .into(),
        );
    }
    let mut conn = connect(settings)?;
    let now = clock.now();
    match cmd {
        KeysCommand::Rotate { now: at_once } => {
            let rotated = key_rotation::rotate(&mut conn, settings, now, at_once)
                .map_err(|e| e.to_string())?;
            match (rotated.promoted, rotated.signs_from <= now) {
                (true, _) => println!("key {} signs from now on", rotated.kid),
                (false, true) => println!("new signing key {}", rotated.kid),
                (false, false) => println!(
                    "new key {} is published and signs from {}",
                    rotated.kid,
                    rotated.signs_from.to_rfc3339()
                ),
            }
        }
        KeysCommand::List { json } => {
            let keys = key_rotation::list(&mut conn, now).map_err(|e| e.to_string())?;
            if json {
                let doc = serde_json::json!({ "keys": keys });
                println!("{doc}");
            }
            for key in keys.iter().filter(|_| !json) {
                println!("{}", key_rotation::describe(key));
            }
        }
        KeysCommand::Revoke { kid } => {
            match key_rotation::revoke(&mut conn, &kid, now).map_err(|e| e.to_string())? {
                Some(successor) => {
                    println!("revoked key {kid}; key {successor} signs from now on")
                }
                None => println!("revoked key {kid}"),
            }
        }
    }
    Ok(())
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

fn services_command(
    cmd: ServicesCommand,
    settings: &Settings,
    clock: &Clock,
) -> Result<(), String> {
    let mut conn = connect(settings)?;
    match cmd {
        ServicesCommand::Create { name } => {
            let (row, credentials) = service_registry::create(&mut conn, &name, clock.now())
                .map_err(|e| e.to_string())?;
            println!(
                "{}",
                serde_json::json!({
                    "client_id": credentials.client_id,
                    "client_secret": credentials.client_secret,
                    "name": row.name,
                })
            );
        }
        ServicesCommand::List => {
            for row in service_registry::list(&mut conn).map_err(|e| e.to_string())? {
                println!(
                    "{}\t{}\t{}",
                    row.name,
                    row.client_id,
                    row.created_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
            }
        }
        ServicesCommand::Delete { name } => {
            let row = service_registry::delete(&mut conn, &name, clock.now())
                .map_err(|e| e.to_string())?;
            println!("deleted service {} ({})", row.name, row.client_id);
        }
    }
    Ok(())
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
            // One connection, opened after the hash and closed before the
            // process exits: a pool's background threads could still be
            // inside libpq when the process exits (and crash it).
            let hash = password
                .hash(settings.auth.bcrypt_cost)
                .map_err(|e| format!("bcrypt: {e}"))?;
            let mut conn = connect(settings)?;
            let user = accounts::insert_user(
                &mut conn,
                &username,
                &hash,
                name.as_deref(),
                admin,
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
                Actor::Operator,
                user.id,
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
            admin::unban(&mut conn, Actor::Operator, user.id, clock.now())
                .map_err(|e| format!("database: {e}"))?;
            println!("unbanned {}", user.username);
            Ok(())
        }
        UsersCommand::Unlock { username } => {
            // Unknown names are counted and locked too (API.md section 3),
            // so no user need exist; a name no user could have is an error.
            let username = Username::parse(&username)?;
            let mut conn = connect(settings)?;
            let cleared = lockout::unlock(&mut conn, username.as_str())
                .map_err(|e| format!("database: {e}"))?;
            if cleared {
                println!("unlocked {username}");
            } else {
                println!("{username} had no failed sign-ins to clear");
            }
            Ok(())
        }
    }
}
