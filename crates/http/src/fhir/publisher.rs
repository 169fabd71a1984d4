//! The publisher of the SMART bulk files: a background task on each node
//! that writes the Location, Schedule and Slot files to disk when the data
//! they reflect changed (at most once a minute by default), the Slot files
//! one per state in parts of bounded size, and swaps each publication in
//! whole; [`super::bulk`] serves what it published.

use super::bulk::{content, entries, DataState, Version, FILES};
use crate::AppState;
use jiff::Timestamp;
use medislot_store::{ClinicRecord, DoctorRecord};
use std::sync::Arc;

/// A doctor with their clinic, as the directory lists them.
type Entry = (DoctorRecord, ClinicRecord);
/// One file to write: its name, the states it covers, its entries.
type Group<T> = (String, Vec<String>, Vec<T>);

/// How often the publisher looks whether the data changed (at most).
const CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// At most this many doctors' slots in one Slot file (60 days of a full-time
/// doctor's slots are about 350 kB): each file stays a size a slot finder can
/// fetch, however large the directory.
const SLOT_FILE_DOCTORS: usize = 500;

/// One file of a publication.
#[derive(Clone)]
pub(super) struct Part {
    /// Its name without `.ndjson`: `Location`, `Schedule`, `Slot-NY-1`.
    pub(super) name: String,
    pub(super) path: std::path::PathBuf,
    /// The states (a clinic's district, else its country) its clinics are
    /// in: the manifest's hint to slot finders that serve some places only.
    pub(super) states: Vec<String>,
}

/// One publication of a kind: its files, what data it reflects, when it was made.
#[derive(Clone)]
pub(super) struct Artefact {
    /// One file for Location and Schedule; the Slot files, by state.
    pub(super) parts: Vec<Part>,
    /// The ETag readers get: the data's version and when this publication was
    /// made (two made from data changed within one second differ).
    etag: String,
    /// The data's version it was made from.
    data: String,
    last_change: Timestamp,
    made: std::time::Instant,
    /// When its generation began: a change in that second may not be in it.
    began: Timestamp,
}

impl Artefact {
    /// What one of its files answers to conditional requests.
    pub(super) fn version(&self, part: Option<&Part>) -> Version {
        let etag = match part {
            Some(p) => format!("{}-{}\"", self.etag.trim_end_matches('"'), p.name),
            None => self.etag.clone(),
        };
        Version { last_change: self.last_change, etag }
    }
}

/// The published files of this node, one per kind: readers take the current
/// one, the [`Publisher`] replaces it when a new one is complete.
pub struct Published {
    pub(super) files: [tokio::sync::watch::Sender<Option<Artefact>>; 3],
    /// The web pages' origin, for the booking deep links (never a request's
    /// `Host`: a reader must not choose the links every other reader gets).
    pub(super) origin: String,
}

impl Published {
    pub fn new(public_url: &str) -> Self {
        Self {
            files: std::array::from_fn(|_| tokio::sync::watch::Sender::new(None)),
            origin: public_url.trim_end_matches('/').to_string(),
        }
    }
}

/// The background task that keeps this node's bulk files current: it
/// publishes them at start, then again whenever the data they reflect changed
/// and the previous publication is old enough (a minute by default).
pub struct Publisher {
    state: AppState,
    /// The shortest time between two publications of one file.
    republish: std::time::Duration,
}

impl Publisher {
    pub(crate) fn new(state: AppState, republish: std::time::Duration) -> Self {
        Self { state, republish }
    }

    /// Publishes until `stop` completes (a generation under way is abandoned).
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let _ = self.remove_leftovers().await;
        loop {
            tokio::select! {
                () = &mut stop => return,
                () = self.publish_changed() => {}
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(CHECK_EVERY.min(self.republish)) => {}
            }
        }
    }

    /// What a previous process left: temporary files of a generation it did
    /// not finish, and its publications (no reader is served before this
    /// node's own first publication).
    async fn remove_leftovers(&self) -> std::io::Result<()> {
        let mut entries = tokio::fs::read_dir(&*self.state.bulk_dir).await?;
        while let Some(e) = entries.next_entry().await? {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") || name.ends_with(".ndjson") {
                tokio::fs::remove_file(e.path()).await?;
            }
        }
        Ok(())
    }

    async fn publish_changed(&self) {
        let data = match DataState::now(&self.state).await {
            Ok(d) => d,
            Err(e) => return tracing::warn!(error = %e.0.detail, "bulk files: reading what changed failed; retrying"),
        };
        for (index, kind) in FILES.iter().enumerate() {
            let slot = &self.state.published.files[index];
            let v = data.version(kind, None);
            let due = slot.borrow().as_ref().is_none_or(|a| {
                // Changes are known to the second: one in the second the last
                // generation began may have come after it read the data.
                let maybe_missed = data.changed.as_second() >= a.began.as_second();
                (a.data != v.etag || maybe_missed) && a.made.elapsed() >= self.republish
            });
            if !due {
                continue;
            }
            let started = std::time::Instant::now();
            match self.generate(kind, &v).await {
                Ok(a) => {
                    tracing::info!(
                        kind,
                        files = a.parts.len(),
                        seconds = started.elapsed().as_secs_f64(),
                        "bulk file published"
                    );
                    let previous = slot.send_replace(Some(a.clone()));
                    // The previous publication's files; readers still reading
                    // one keep it open, those about to open one take the new one.
                    for old in
                        previous.iter().flat_map(|p| &p.parts).filter(|o| a.parts.iter().all(|n| n.path != o.path))
                    {
                        let _ = tokio::fs::remove_file(&old.path).await;
                    }
                }
                // Readers keep the previous file; the next check tries again.
                Err(e) => tracing::warn!(error = %e, kind, "bulk file: publishing failed; retrying"),
            }
        }
    }

    /// Writes each file of a publication to a temporary name, then renames
    /// them into place: a reader opens a previous file or a new one, never
    /// half a file.
    async fn generate(&self, kind: &str, v: &Version) -> std::io::Result<Artefact> {
        use futures::StreamExt;
        use tokio::io::AsyncWriteExt;
        let s = &self.state;
        let began = s.app.now();
        let dir: &std::path::Path = &s.bulk_dir;
        tokio::fs::create_dir_all(dir).await?;
        let entries = entries(s, None).await.map_err(|e| std::io::Error::other(e.0.detail))?;
        let groups = if kind == "Slot" {
            slot_parts(entries)
        } else {
            let states: std::collections::BTreeSet<String> = entries.iter().filter_map(|(_, c)| state_of(c)).collect();
            vec![(kind.to_string(), states.into_iter().collect(), entries)]
        };
        let mut parts = Vec::new();
        let mut temporary = Vec::new();
        let written = async {
            for (name, states, entries) in groups {
                let tmp = dir.join(format!("{name}.ndjson.{}.tmp", uuid::Uuid::new_v4().simple()));
                temporary.push(tmp.clone());
                let mut out = tokio::io::BufWriter::new(tokio::fs::File::create(&tmp).await?);
                let mut chunks = content(s, kind, Arc::new(entries));
                while let Some(chunk) = chunks.next().await {
                    out.write_all(&chunk?).await?;
                }
                out.flush().await?;
                out.into_inner().sync_all().await?;
                // Each publication's own files: a reader never gets one
                // publication's ETag with another's bytes.
                let path = dir.join(format!("{name}.{}.ndjson", began.as_millisecond()));
                parts.push(Part { path, name, states });
            }
            for (tmp, part) in temporary.iter().zip(&parts) {
                tokio::fs::rename(tmp, &part.path).await?;
            }
            Ok::<_, std::io::Error>(())
        }
        .await;
        if written.is_err() {
            for tmp in &temporary {
                let _ = tokio::fs::remove_file(tmp).await;
            }
        }
        written?;
        let etag = format!("{}-{}\"", v.etag.trim_end_matches('"'), began.as_millisecond());
        Ok(Artefact {
            parts,
            etag,
            data: v.etag.clone(),
            last_change: v.last_change,
            made: std::time::Instant::now(),
            began,
        })
    }
}

/// The Slot files of a publication: the directory grouped by state (a
/// clinic's district, else its country), at most [`SLOT_FILE_DOCTORS`]
/// doctors per file. Returns each file's name, states and entries.
fn slot_parts(mut dir: Vec<Entry>) -> Vec<Group<Entry>> {
    dir.sort_by_key(|(d, c)| (state_of(c), d.id.0));
    split_by_state(dir, |(_, c)| state_of(c), SLOT_FILE_DOCTORS)
}

/// The state a clinic's files are listed under: its district, else its country.
fn state_of(c: &ClinicRecord) -> Option<String> {
    c.postal.district.clone().or_else(|| c.postal.country.clone())
}

/// Items sorted by state, in files of at most `max` items of one state each,
/// named `Slot-{state}-{n}` (the state's letters and digits; `other` without one).
fn split_by_state<T>(items: Vec<T>, state: impl Fn(&T) -> Option<String>, max: usize) -> Vec<Group<T>> {
    let mut parts: Vec<Group<T>> = Vec::new();
    let mut n = 0;
    for item in items {
        let st = state(&item);
        let same_state = parts.last().is_some_and(|(_, s, _)| s.first() == st.as_ref());
        if !same_state || parts.last().is_some_and(|(_, _, e)| e.len() >= max) {
            n = if same_state { n + 1 } else { 1 };
            let slug: String = st
                .as_deref()
                .unwrap_or("other")
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            parts.push((format!("Slot-{slug}-{n}"), st.into_iter().collect(), Vec::new()));
        }
        if let Some(last) = parts.last_mut() {
            last.2.push(item);
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::split_by_state;

    #[test]
    fn slot_files_hold_one_state_each_and_at_most_the_bound() {
        let items: Vec<(Option<&str>, u32)> = [(Some("IDF"), 5), (Some("NY"), 2), (None, 1)]
            .iter()
            .flat_map(|(st, n)| (0..*n).map(move |i| (*st, i)))
            .collect();
        let mut items = items;
        items.sort();
        let parts = split_by_state(items, |(st, _)| st.map(str::to_string), 2);
        let shape: Vec<(String, Vec<String>, usize)> = parts.into_iter().map(|(n, s, e)| (n, s, e.len())).collect();
        let want = [
            ("Slot-other-1", vec![], 1),
            ("Slot-IDF-1", vec!["IDF"], 2),
            ("Slot-IDF-2", vec!["IDF"], 2),
            ("Slot-IDF-3", vec!["IDF"], 1),
            ("Slot-NY-1", vec!["NY"], 2),
        ];
        let want: Vec<(String, Vec<String>, usize)> =
            want.iter().map(|(n, s, k)| (n.to_string(), s.iter().map(|x| x.to_string()).collect(), *k)).collect();
        assert_eq!(shape, want);
    }
}
