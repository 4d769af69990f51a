//! The Event State Compositor (ESC) of RFC 3903 for the `presence` event (RFC 3856 §6,
//! TS 24.141), socket-free: PUBLISH in ([`EventStateCompositor::handle_publish`]),
//! the response to send out, the presentities whose composed document changed queued
//! ([`EventStateCompositor::poll_changed`]), expiry driven by `poll_timeout()` / `expire(now)`.
//!
//! One publication per device (each has its own entity-tag and expiry, RFC 3903 §4.1); the
//! document watchers see is the composition of them (RFC 3903 §3 leaves the policy to the
//! package; ours: union of tuples, the person and notes of the newest). When a presentity's last
//! publication goes, its "last seen" time stays: the document shows the last tuples `closed`
//! with that time as `<timestamp>` (RFC 3863 §4.1.7).
//!
//! ```text
//!                  PUBLISH, no SIP-If-Match, body          PUBLISH, If-Match, no body
//!   (no state) ---------------------------------> [published] <-----------------+ (refresh)
//!       ^                                          |    |  |                    |
//!       |      expire(now) / Expires: 0            |    |  +--------------------+
//!       +--- (last seen) <-------------------------+    +-- If-Match + body: modify
//! ```

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use super::pidf::{timestamp, Basic, Pidf, PidfError, PidfLimits, Tuple};

/// The bounds and timers of the compositor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicationLimits {
    /// The least Expires accepted, other than 0 (below: 423 with Min-Expires, RFC 3903 §6).
    pub min_expires: u32,
    /// Expires above this are shortened to it (RFC 3903 §6).
    pub max_expires: u32,
    /// Expires when the PUBLISH has none (our choice: one hour, what RFC 3856 §6.4 gives a
    /// presence subscription).
    pub default_expires: u32,
    /// Most presentities held (with a publication or a "last seen").
    pub max_presentities: usize,
    /// Most publications (devices) of one presentity.
    pub max_publications_per_presentity: usize,
    /// Caps on one PIDF body.
    pub pidf: PidfLimits,
}

impl Default for PublicationLimits {
    fn default() -> Self {
        PublicationLimits {
            min_expires: 60,
            max_expires: 3600 * 24,
            default_expires: 3600,
            max_presentities: 10_000,
            max_publications_per_presentity: 8,
            pidf: PidfLimits::default(),
        }
    }
}

/// A successful PUBLISH: a 200 OK with `SIP-ETag` and `Expires` (RFC 3903 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// An initial publication (RFC 3903 §4.2).
    Created {
        /// The new entity-tag.
        etag: String,
        /// The granted Expires.
        expires: u32,
    },
    /// A refresh: If-Match, no body (RFC 3903 §4.3).
    Refreshed {
        /// The new entity-tag.
        etag: String,
        /// The granted Expires.
        expires: u32,
    },
    /// A modification: If-Match and a body (RFC 3903 §4.4).
    Modified {
        /// The new entity-tag.
        etag: String,
        /// The granted Expires.
        expires: u32,
    },
    /// A removal: Expires 0 (RFC 3903 §4.5). The entity-tag names no state.
    Removed {
        /// A fresh entity-tag.
        etag: String,
    },
}

impl Published {
    /// The `SIP-ETag` of the 200.
    pub fn etag(&self) -> &str {
        match self {
            Published::Created { etag, .. }
            | Published::Refreshed { etag, .. }
            | Published::Modified { etag, .. }
            | Published::Removed { etag } => etag,
        }
    }

    /// The `Expires` of the 200.
    pub fn expires(&self) -> u32 {
        match self {
            Published::Created { expires, .. }
            | Published::Refreshed { expires, .. }
            | Published::Modified { expires, .. } => *expires,
            Published::Removed { .. } => 0,
        }
    }
}

/// A refused PUBLISH, with the status to answer it with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// An initial PUBLISH (no SIP-If-Match) without a body (RFC 3903 §6): 400.
    #[error("initial PUBLISH without a body")]
    MissingBody,
    /// The body is not a PIDF we accept: 400, or 413 when too large.
    #[error(transparent)]
    Body(#[from] PidfError),
    /// SIP-If-Match names no live publication of this presentity (RFC 3903 §6): 412.
    #[error("no publication with entity-tag {0:?}")]
    UnknownEtag(String),
    /// Expires below the minimum (RFC 3903 §6): 423 with `Min-Expires`.
    #[error("Expires below the minimum of {min_expires} s")]
    IntervalTooBrief {
        /// The `Min-Expires` to send.
        min_expires: u32,
    },
    /// The compositor holds as many presentities as it may: 503.
    #[error("the presence server holds its maximum of {0} presentities")]
    TooManyPresentities(usize),
    /// The presentity has as many publications as it may: 503.
    #[error("{entity} has its maximum of {limit} publications")]
    TooManyPublications {
        /// The presentity.
        entity: String,
        /// The limit.
        limit: usize,
    },
}

impl PublishError {
    /// The SIP status of the answer.
    pub fn status_code(&self) -> u16 {
        match self {
            PublishError::MissingBody => 400,
            PublishError::Body(e) => e.status_code(),
            PublishError::UnknownEtag(_) => 412,
            PublishError::IntervalTooBrief { .. } => 423,
            PublishError::TooManyPresentities(_) | PublishError::TooManyPublications { .. } => 503,
        }
    }
}

/// What [`EventStateCompositor::handle_publish`] decides.
pub type PublishOutcome = Result<Published, PublishError>;

/// One device's publication.
#[derive(Debug)]
struct Publication {
    /// Order of creation; disambiguates clashing tuple ids.
    seq: u64,
    etag: String,
    expires_at: Instant,
    modified_at: Instant,
    doc: Pidf,
}

/// When the presentity was last seen, and the tuples it had then.
#[derive(Debug)]
struct LastSeen {
    at: SystemTime,
    tuples: Vec<Tuple>,
}

#[derive(Debug, Default)]
struct Presentity {
    publications: Vec<Publication>,
    last_seen: Option<LastSeen>,
}

/// The ESC: publications by presentity, their entity-tags and expiry timers.
#[derive(Debug)]
pub struct EventStateCompositor {
    limits: PublicationLimits,
    /// `now` of the caller and the wall-clock time it stands for, for "last seen".
    anchor: (Instant, SystemTime),
    presentities: HashMap<String, Presentity>,
    /// Entity-tag -> presentity.
    etags: HashMap<String, String>,
    /// (expiry, entity-tag), soonest first.
    timers: BTreeSet<(Instant, String)>,
    changed: VecDeque<String>,
    next_seq: u64,
    salt: u32,
}

impl EventStateCompositor {
    /// A compositor; `anchor_wall` is the wall-clock time at `anchor` (tests pass a fixed
    /// pair, the node `(Instant::now(), SystemTime::now())`).
    pub fn new(
        limits: PublicationLimits,
        anchor: Instant,
        anchor_wall: SystemTime,
    ) -> EventStateCompositor {
        EventStateCompositor {
            limits,
            anchor: (anchor, anchor_wall),
            presentities: HashMap::new(),
            etags: HashMap::new(),
            timers: BTreeSet::new(),
            changed: VecDeque::new(),
            next_seq: 1,
            salt: rand::random(),
        }
    }

    /// The limits in force (the node parses bodies with `limits().pidf`).
    pub fn limits(&self) -> &PublicationLimits {
        &self.limits
    }

    /// Parses a PUBLISH body under this compositor's caps.
    pub fn parse_body(&self, body: &[u8]) -> Result<Pidf, PublishError> {
        Ok(Pidf::parse(body, &self.limits.pidf)?)
    }

    fn wall(&self, now: Instant) -> SystemTime {
        self.anchor.1 + now.saturating_duration_since(self.anchor.0)
    }

    fn new_etag(&mut self) -> String {
        let seq = self.next_seq;
        self.next_seq += 1;
        format!("{:08x}{seq:x}", self.salt)
    }

    /// Handles a PUBLISH for `entity` (the Request-URI's presentity) per RFC 3903 §6:
    /// `if_match` is SIP-If-Match, `expires` the Expires header, `body` the parsed PIDF.
    pub fn handle_publish(
        &mut self,
        now: Instant,
        entity: &str,
        if_match: Option<&str>,
        expires: Option<u32>,
        body: Option<Pidf>,
    ) -> PublishOutcome {
        self.expire(now);
        // The entity-tag must name a live publication of this presentity.
        if let Some(tag) = if_match {
            if self.etags.get(tag).map(String::as_str) != Some(entity) {
                return Err(PublishError::UnknownEtag(tag.to_string()));
            }
        }
        // Then Expires.
        let requested = expires.unwrap_or(self.limits.default_expires);
        if requested != 0 && requested < self.limits.min_expires {
            return Err(PublishError::IntervalTooBrief {
                min_expires: self.limits.min_expires,
            });
        }
        let granted = requested.min(self.limits.max_expires);
        let before = self.document(entity);
        let outcome = match (if_match, granted) {
            (Some(tag), 0) => {
                self.remove(now, entity, tag);
                Published::Removed {
                    etag: self.new_etag(),
                }
            }
            // Nothing to remove: an initial PUBLISH that asks for no time at all.
            (None, 0) => Published::Removed {
                etag: self.new_etag(),
            },
            (Some(tag), _) => {
                let etag = self.new_etag();
                let expires_at = now + Duration::from_secs(granted.into());
                let p = self
                    .presentities
                    .get_mut(entity)
                    .and_then(|p| p.publications.iter_mut().find(|p| p.etag == tag))
                    .ok_or_else(|| PublishError::UnknownEtag(tag.to_string()))?;
                self.timers.remove(&(p.expires_at, p.etag.clone()));
                self.etags.remove(&p.etag);
                p.etag = etag.clone();
                p.expires_at = expires_at;
                let modified = body.is_some();
                if let Some(doc) = body {
                    p.doc = doc;
                    p.modified_at = now;
                }
                self.timers.insert((expires_at, etag.clone()));
                self.etags.insert(etag.clone(), entity.to_string());
                if modified {
                    Published::Modified {
                        etag,
                        expires: granted,
                    }
                } else {
                    Published::Refreshed {
                        etag,
                        expires: granted,
                    }
                }
            }
            (None, _) => {
                let doc = body.ok_or(PublishError::MissingBody)?;
                self.make_room(entity)?;
                let etag = self.new_etag();
                let seq = self.next_seq;
                self.next_seq += 1;
                let expires_at = now + Duration::from_secs(granted.into());
                let p = self.presentities.entry(entity.to_string()).or_default();
                p.publications.push(Publication {
                    seq,
                    etag: etag.clone(),
                    expires_at,
                    modified_at: now,
                    doc,
                });
                self.timers.insert((expires_at, etag.clone()));
                self.etags.insert(etag.clone(), entity.to_string());
                Published::Created {
                    etag,
                    expires: granted,
                }
            }
        };
        self.note_change(entity, before);
        Ok(outcome)
    }

    /// Refuses a new publication of `entity` beyond the caps; evicts the oldest "last seen"
    /// when the presentity table is full.
    fn make_room(&mut self, entity: &str) -> Result<(), PublishError> {
        if let Some(p) = self.presentities.get(entity) {
            let limit = self.limits.max_publications_per_presentity;
            return match p.publications.len() < limit {
                true => Ok(()),
                false => Err(PublishError::TooManyPublications {
                    entity: entity.to_string(),
                    limit,
                }),
            };
        }
        if self.presentities.len() < self.limits.max_presentities {
            return Ok(());
        }
        let oldest = self
            .presentities
            .iter()
            .filter(|(_, p)| p.publications.is_empty())
            .filter_map(|(e, p)| p.last_seen.as_ref().map(|l| (l.at, e.clone())))
            .min();
        match oldest {
            Some((_, e)) => {
                self.presentities.remove(&e);
                Ok(())
            }
            None => Err(PublishError::TooManyPresentities(
                self.limits.max_presentities,
            )),
        }
    }

    /// Removes the publication `etag` of `entity`; remembers "last seen" when it was the last.
    fn remove(&mut self, now: Instant, entity: &str, etag: &str) {
        let wall = self.wall(now);
        let Some(p) = self.presentities.get_mut(entity) else {
            return;
        };
        let Some(i) = p.publications.iter().position(|p| p.etag == etag) else {
            return;
        };
        let gone = p.publications.remove(i);
        self.timers.remove(&(gone.expires_at, gone.etag.clone()));
        self.etags.remove(&gone.etag);
        if p.publications.is_empty() {
            p.last_seen = Some(LastSeen {
                at: wall,
                tuples: gone.doc.tuples,
            });
        }
    }

    /// Removes every publication of `entity` at `now` (its user is no longer registered:
    /// TS 24.141 §5.3, the PS learns it from the reg event), remembering "last seen" and
    /// queueing the change. Returns how many were removed.
    pub fn withdraw(&mut self, now: Instant, entity: &str) -> usize {
        let etags: Vec<String> = self
            .presentities
            .get(entity)
            .map(|p| p.publications.iter().map(|x| x.etag.clone()).collect())
            .unwrap_or_default();
        if etags.is_empty() {
            return 0;
        }
        let before = self.document(entity);
        for e in &etags {
            self.remove(now, entity, e);
        }
        self.note_change(entity, before);
        etags.len()
    }

    /// Queues `entity` for [`Self::poll_changed`] when its document differs from `before`.
    fn note_change(&mut self, entity: &str, before: Option<Pidf>) {
        if self.document(entity) != before && !self.changed.iter().any(|e| e == entity) {
            self.changed.push_back(entity.to_string());
        }
    }

    /// When the next publication expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Removes the publications whose time is up at `now` (RFC 3903 §4.3: state expires unless
    /// refreshed); their presentities are queued as changed.
    pub fn expire(&mut self, now: Instant) {
        while let Some((at, etag)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            let Some(entity) = self.etags.get(&etag).cloned() else {
                self.timers.remove(&(at, etag));
                continue;
            };
            let before = self.document(&entity);
            self.remove(at, &entity, &etag);
            self.note_change(&entity, before);
        }
    }

    /// The next presentity whose composed document changed (its watchers need a NOTIFY).
    pub fn poll_changed(&mut self) -> Option<String> {
        self.changed.pop_front()
    }

    /// When `entity` was last seen: the time its last publication was removed or expired,
    /// while it has none.
    pub fn last_seen(&self, entity: &str) -> Option<SystemTime> {
        let p = self.presentities.get(entity)?;
        match p.publications.is_empty() {
            true => p.last_seen.as_ref().map(|l| l.at),
            false => None,
        }
    }

    /// How many publications `entity` has.
    pub fn publications(&self, entity: &str) -> usize {
        self.presentities
            .get(entity)
            .map_or(0, |p| p.publications.len())
    }

    /// The composed document of `entity`: the union of its publications' tuples (a clashing
    /// id gets `-N` appended, N the publication's number), the person and notes of the most
    /// recently modified publication that has them. Without publications, the "last seen"
    /// document: the last tuples `closed`, stamped with the time. `None` for a presentity
    /// the compositor knows nothing of.
    pub fn document(&self, entity: &str) -> Option<Pidf> {
        let p = self.presentities.get(entity)?;
        let mut doc = Pidf::empty(entity);
        if p.publications.is_empty() {
            let seen = p.last_seen.as_ref()?;
            let stamp = timestamp(seen.at);
            let mut tuples = seen.tuples.clone();
            if tuples.is_empty() {
                tuples.push(Tuple::new("last-seen", Basic::Closed));
            }
            for mut t in tuples {
                t.basic = Some(Basic::Closed);
                t.notes.clear();
                t.timestamp = Some(stamp.clone());
                doc.tuples.push(t);
            }
            return Some(doc);
        }
        for publication in &p.publications {
            for t in &publication.doc.tuples {
                let mut t = t.clone();
                let mut n = 0;
                while doc.tuples.iter().any(|x| x.id == t.id) {
                    n += 1;
                    t.id = match n {
                        1 => format!("{}-{}", t.id, publication.seq),
                        _ => format!("{}-{n}", t.id),
                    };
                }
                doc.tuples.push(t);
            }
        }
        let newest_first = || {
            let mut v: Vec<&Publication> = p.publications.iter().collect();
            v.sort_by_key(|p| std::cmp::Reverse((p.modified_at, p.seq)));
            v.into_iter()
        };
        doc.person = newest_first().find_map(|p| p.doc.person.clone());
        doc.notes = newest_first()
            .map(|p| &p.doc.notes)
            .find(|n| !n.is_empty())
            .cloned()
            .unwrap_or_default();
        Some(doc)
    }
}

#[cfg(test)]
mod tests;
