//! Thread history, in memory and scoped per owner.
//!
//! Memory is bounded: at most [`MAX_THREADS`] threads in all (the least recently updated one
//! is dropped to make room) and [`MAX_MESSAGES_PER_THREAD`] messages per thread (the oldest
//! are dropped). A stub is for tests and demos; a restart forgets everything.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, MutexGuard, PoisonError},
    time::SystemTime,
};

use agent_bridge_proto::v1;
use tonic::metadata::MetadataMap;

use crate::error::Error;

/// Threads kept across all owners before the least recently updated is dropped.
pub(crate) const MAX_THREADS: usize = 10_000;
/// Messages kept per thread before the oldest are dropped.
pub(crate) const MAX_MESSAGES_PER_THREAD: usize = 1_000;
const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 200;
const TITLE_CHARS: usize = 60;

/// Who a thread belongs to: the end user the bridge authenticated, from request metadata.
/// One owner never sees another's threads, even with the same thread id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Owner {
    /// `x-identity-kind` and `x-issuer`: the credential's namespace, so a JWT subject and an
    /// API key of the same name are different owners.
    kind: String,
    issuer: String,
    tenant: String,
    subject: String,
}

impl Owner {
    /// From `x-identity-kind`, `x-issuer`, `x-tenant` and `x-subject`; absent values are empty
    /// (the anonymous owner).
    pub(crate) fn from_metadata(metadata: &MetadataMap) -> Self {
        // Lossy rather than `to_str`: an unusual byte must not turn a user into the anonymous
        // owner and show them someone else's threads.
        let value = |key| {
            metadata
                .get(key)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default()
        };
        Self {
            kind: value("x-identity-kind"),
            issuer: value("x-issuer"),
            tenant: value("x-tenant"),
            subject: value("x-subject"),
        }
    }
}

/// The ids a run's messages get in their thread, reserved when the run starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MessageIds {
    pub(crate) user: String,
    pub(crate) answer: String,
}

/// One message as the history keeps it.
#[derive(Debug, Clone)]
pub(crate) struct StoredMessage {
    pub(crate) message_id: String,
    pub(crate) role: &'static str,
    pub(crate) content: String,
    /// Empty for user messages.
    pub(crate) agent: &'static str,
    pub(crate) run_id: String,
    pub(crate) created_at: SystemTime,
}

#[derive(Debug)]
struct Thread {
    title: String,
    created_at: SystemTime,
    updated_at: SystemTime,
    /// A logical clock for "most recently updated": wall-clock times can tie or step back.
    touched: u64,
    /// Message numbers are never reused, even when messages are dropped or runs overlap.
    next_message_no: u64,
    messages: VecDeque<StoredMessage>,
}

impl Thread {
    fn push(&mut self, message: StoredMessage, touched: u64) {
        self.updated_at = message.created_at;
        self.touched = touched;
        self.messages.push_back(message);
        if self.messages.len() > MAX_MESSAGES_PER_THREAD {
            self.messages.pop_front();
        }
    }
}

#[derive(Debug, Default)]
struct State {
    owners: HashMap<Owner, HashMap<String, Thread>>,
    thread_count: usize,
    clock: u64,
}

impl State {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Drops the least recently updated thread of any owner. A linear scan: it only runs when
    /// the store is full, and 10 000 entries scan in microseconds.
    fn evict_one(&mut self) {
        let oldest = self
            .owners
            .iter()
            .flat_map(|(owner, threads)| threads.iter().map(move |(id, t)| (t.touched, owner, id)))
            .min_by_key(|(touched, _, _)| *touched)
            .map(|(_, owner, id)| (owner.clone(), id.clone()));
        if let Some((owner, id)) = oldest {
            self.remove(&owner, &id);
        }
    }

    fn remove(&mut self, owner: &Owner, thread_id: &str) -> Option<Thread> {
        let threads = self.owners.get_mut(owner)?;
        let thread = threads.remove(thread_id)?;
        if threads.is_empty() {
            self.owners.remove(owner);
        }
        self.thread_count -= 1;
        Some(thread)
    }
}

/// All threads of one stub.
#[derive(Debug, Default)]
pub(crate) struct ThreadStore {
    // A std mutex: no lock is held across an await, and every critical section is short.
    state: Mutex<State>,
}

impl ThreadStore {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one step.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the user's message of a new run (creating the thread if needed) and reserves
    /// the id of the answer.
    pub(crate) fn begin_run(
        &self,
        owner: &Owner,
        thread_id: &str,
        run_id: &str,
        message: &str,
    ) -> MessageIds {
        let mut state = self.state();
        let touched = state.tick();
        let now = SystemTime::now();
        let exists = state
            .owners
            .get(owner)
            .is_some_and(|threads| threads.contains_key(thread_id));
        if !exists {
            if state.thread_count >= MAX_THREADS {
                state.evict_one();
            }
            state.thread_count += 1;
            state.owners.entry(owner.clone()).or_default().insert(
                thread_id.to_owned(),
                Thread {
                    title: message.chars().take(TITLE_CHARS).collect(),
                    created_at: now,
                    updated_at: now,
                    touched,
                    next_message_no: 1,
                    messages: VecDeque::new(),
                },
            );
        }
        let thread = state
            .owners
            .get_mut(owner)
            .and_then(|threads| threads.get_mut(thread_id))
            .expect("the thread was just found or created");

        let number = thread.next_message_no;
        thread.next_message_no += 2;
        let ids = MessageIds {
            user: format!("m-{number}"),
            answer: format!("m-{}", number + 1),
        };
        thread.push(
            StoredMessage {
                message_id: ids.user.clone(),
                role: "user",
                content: message.to_owned(),
                agent: "",
                run_id: run_id.to_owned(),
                created_at: now,
            },
            touched,
        );
        ids
    }

    /// Appends a message to an existing thread. If the thread was deleted while the run went
    /// on, the message goes nowhere: the user asked for the history to be gone.
    pub(crate) fn append(&self, owner: &Owner, thread_id: &str, message: StoredMessage) {
        let mut state = self.state();
        let touched = state.tick();
        if let Some(thread) = state
            .owners
            .get_mut(owner)
            .and_then(|threads| threads.get_mut(thread_id))
        {
            thread.push(message, touched);
        }
    }

    /// The owner's threads, most recently updated first.
    pub(crate) fn list_threads(&self, owner: &Owner, page: Page) -> (Vec<v1::Thread>, String) {
        let state = self.state();
        let mut threads: Vec<(&String, &Thread)> = state
            .owners
            .get(owner)
            .map(|threads| threads.iter().collect())
            .unwrap_or_default();
        threads.sort_unstable_by_key(|(_, t)| std::cmp::Reverse(t.touched));
        let (range, next_page_token) = page.window(threads.len());
        let threads = threads[range]
            .iter()
            .map(|(id, t)| v1::Thread {
                thread_id: (*id).clone(),
                title: t.title.clone(),
                created_at: Some(t.created_at.into()),
                updated_at: Some(t.updated_at.into()),
                message_count: u32::try_from(t.messages.len()).unwrap_or(u32::MAX),
            })
            .collect();
        (threads, next_page_token)
    }

    /// One thread's messages, oldest first.
    pub(crate) fn list_messages(
        &self,
        owner: &Owner,
        thread_id: &str,
        page: Page,
    ) -> Result<(Vec<v1::ThreadMessage>, String), Error> {
        let state = self.state();
        let thread = state
            .owners
            .get(owner)
            .and_then(|threads| threads.get(thread_id))
            .ok_or_else(|| Error::ThreadNotFound(thread_id.to_owned()))?;
        let (range, next_page_token) = page.window(thread.messages.len());
        let messages = thread
            .messages
            .range(range)
            .map(|m| v1::ThreadMessage {
                message_id: m.message_id.clone(),
                role: m.role.into(),
                content: m.content.clone(),
                agent: m.agent.into(),
                run_id: m.run_id.clone(),
                created_at: Some(m.created_at.into()),
            })
            .collect();
        Ok((messages, next_page_token))
    }

    /// Deletes a thread; returns how many messages went with it.
    pub(crate) fn delete(&self, owner: &Owner, thread_id: &str) -> Result<u32, Error> {
        let thread = self
            .state()
            .remove(owner, thread_id)
            .ok_or_else(|| Error::ThreadNotFound(thread_id.to_owned()))?;
        Ok(u32::try_from(thread.messages.len()).unwrap_or(u32::MAX))
    }
}

/// A page request. The token is the decimal offset of the page's first item: opaque to
/// clients, and simple because the stub's lists are small and in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Page {
    offset: usize,
    size: usize,
}

impl Page {
    /// A page size of 0 means the default (50); larger sizes are capped at 200.
    pub(crate) fn new(page_size: u32, page_token: &str) -> Result<Self, Error> {
        let size = match page_size as usize {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let offset = if page_token.is_empty() {
            0
        } else {
            page_token
                .parse()
                .map_err(|_| Error::PageToken(page_token.to_owned()))?
        };
        Ok(Self { offset, size })
    }

    /// The items of a `total`-long list on this page, and the token of the next page (empty
    /// when this is the last).
    fn window(self, total: usize) -> (std::ops::Range<usize>, String) {
        let start = self.offset.min(total);
        let end = start.saturating_add(self.size).min(total);
        let next = if end < total {
            end.to_string()
        } else {
            String::new()
        };
        (start..end, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(subject: &str) -> Owner {
        Owner {
            kind: "jwt".into(),
            issuer: String::new(),
            tenant: "acme".into(),
            subject: subject.into(),
        }
    }

    #[test]
    fn pages_default_cap_and_chain() {
        assert_eq!(Page::new(0, "").unwrap().size, 50);
        assert_eq!(Page::new(1000, "").unwrap().size, 200);
        assert!(matches!(Page::new(10, "abc"), Err(Error::PageToken(_))));
        assert!(matches!(Page::new(10, "-1"), Err(Error::PageToken(_))));

        let first = Page::new(2, "").unwrap();
        assert_eq!(first.window(5), (0..2, "2".to_owned()));
        let second = Page::new(2, "4").unwrap();
        assert_eq!(second.window(5), (4..5, String::new()));
        assert_eq!(Page::new(2, "9").unwrap().window(5), (5..5, String::new()));
    }

    #[test]
    fn threads_are_per_owner_and_newest_first() {
        let store = ThreadStore::default();
        let alice = owner("alice");
        let ids = store.begin_run(&alice, "t-1", "r-1", "first question");
        assert_eq!(ids.user, "m-1");
        assert_eq!(ids.answer, "m-2");
        store.begin_run(&alice, "t-2", "r-2", "second");
        store.begin_run(&owner("bob"), "t-1", "r-3", "bob's");

        let all = Page::new(0, "").unwrap();
        let (threads, next) = store.list_threads(&alice, all);
        let ids: Vec<_> = threads.iter().map(|t| t.thread_id.as_str()).collect();
        assert_eq!((ids, next.as_str()), (vec!["t-2", "t-1"], ""));
        assert_eq!(threads[1].title, "first question");

        let (messages, _) = store.list_messages(&owner("bob"), "t-1", all).unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].content, "bob's");
        assert!(store.list_messages(&owner("carol"), "t-1", all).is_err());
    }

    #[test]
    fn the_least_recently_updated_thread_makes_room() {
        let store = ThreadStore::default();
        let alice = owner("alice");
        for i in 0..MAX_THREADS {
            store.begin_run(&alice, &format!("t-{i}"), "r", "hi");
        }
        // Touch t-0 so that t-1 becomes the oldest.
        store.begin_run(&alice, "t-0", "r", "again");
        store.begin_run(&owner("bob"), "t-new", "r", "hi");

        let all = Page::new(0, "").unwrap();
        assert!(store.list_messages(&alice, "t-1", all).is_err());
        assert!(store.list_messages(&alice, "t-0", all).is_ok());
        assert_eq!(store.state().thread_count, MAX_THREADS);
    }
}
