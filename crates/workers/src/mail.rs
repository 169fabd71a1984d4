//! E-mail: built with lettre (text plus an iCalendar part), sent over SMTP,
//! or written as `.eml` files when no SMTP server is configured (the demo).

use lettre::{
    message::{header::ContentType, Attachment, Mailbox, MultiPart, SinglePart},
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("bad SMTP URL {0:?}: use smtp://HOST[:PORT] (plain SMTP to a relay; default port 25)")]
    BadUrl(String),
    #[error("bad address {0:?}: {1}")]
    BadAddress(String, String),
    #[error("cannot build the message: {0}")]
    Build(String),
    /// The server refused for good (5xx): retrying will not help.
    #[error("refused: {0}")]
    Permanent(String),
    #[error("{0}")]
    Transient(String),
}

/// Where e-mail goes.
#[derive(Clone)]
pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// One `.eml` file per message in this directory.
    Files(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

impl Mailer {
    /// `smtp://host:port` for a server; no URL: files in `dir`.
    pub fn new(smtp_url: Option<&str>, dir: PathBuf) -> Result<Self, MailError> {
        match smtp_url {
            Some(url) => {
                let rest = url.strip_prefix("smtp://").ok_or_else(|| MailError::BadUrl(url.into()))?;
                let rest = rest.trim_end_matches('/');
                let (host, port) = match rest.rsplit_once(':') {
                    Some((h, p)) => (h, p.parse::<u16>().map_err(|_| MailError::BadUrl(url.into()))?),
                    None => (rest, 25),
                };
                if host.is_empty() {
                    return Err(MailError::BadUrl(url.into()));
                }
                let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                    .port(port)
                    .timeout(Some(std::time::Duration::from_secs(10)))
                    .build();
                Ok(Mailer::Smtp(transport))
            }
            None => {
                std::fs::create_dir_all(&dir).map_err(|e| MailError::Build(format!("{}: {e}", dir.display())))?;
                Ok(Mailer::Files(AsyncFileTransport::new(&dir), dir))
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Mailer::Smtp(_) => "SMTP".into(),
            Mailer::Files(_, dir) => format!("files in {}", dir.display()),
        }
    }

    pub async fn send(&self, message: Message) -> Result<(), MailError> {
        match self {
            Mailer::Smtp(t) => t.send(message).await.map(|_| ()).map_err(|e| {
                if e.is_permanent() {
                    MailError::Permanent(e.to_string())
                } else {
                    MailError::Transient(e.to_string())
                }
            }),
            Mailer::Files(t, _) => t.send(message).await.map(|_| ()).map_err(|e| MailError::Transient(e.to_string())),
        }
    }
}

/// An e-mail as queued: everything needed to build the same message again on a retry.
pub struct Outgoing<'a> {
    pub from: &'a str,
    pub to: &'a str,
    /// Stable for (appointment, event, recipient): receivers drop a retried copy.
    pub message_id: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    /// (iTIP method, iCalendar text).
    pub ics: Option<(&'a str, &'a str)>,
}

pub fn build(m: &Outgoing<'_>) -> Result<Message, MailError> {
    let mailbox = |s: &str| s.parse::<Mailbox>().map_err(|e| MailError::BadAddress(s.to_string(), e.to_string()));
    let builder = Message::builder()
        .from(mailbox(m.from)?)
        .to(mailbox(m.to)?)
        .subject(m.subject)
        .message_id(Some(m.message_id.to_string()));
    let text = SinglePart::plain(m.text.to_string());
    let built = match m.ics {
        Some((method, ics)) => {
            let calendar = ContentType::parse(&format!("text/calendar; charset=utf-8; method={method}"))
                .map_err(|e| MailError::Build(e.to_string()))?;
            builder.multipart(
                MultiPart::mixed()
                    .singlepart(text)
                    .singlepart(Attachment::new("appointment.ics".to_string()).body(ics.to_string(), calendar)),
            )
        }
        None => builder.singlepart(text),
    };
    built.map_err(|e| MailError::Build(e.to_string()))
}
