//! One conversation's row, and search with the thread list's filters: the store finds the messages and
//! customers matching the words (at most [`MAX_HITS`]); this keeps the hits
//! whose conversation passes the channel, status, author and priority
//! filters as the member asking sees it, and answers those conversations
//! beside the hits, in the order of their first hit.

use bos_core::inbox::Status;
use bos_store::inbox::{
    AuthorFilter, ConversationSummary, ListQuery, SearchHit, StatusFilter, MAX_HITS,
};
use std::collections::HashMap;
use uuid::Uuid;

use super::{Inbox, InboxError};

/// What a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Matches, best first, each with its highlighted snippet.
    pub hits: Vec<SearchHit>,
    /// The conversations of the hits, in the order of their first hit.
    pub conversations: Vec<ConversationSummary>,
}

/// `unread` and `mine` are a member's view: refused when nobody is asking.
pub(super) fn member_filter_needs(query: &ListQuery) -> Result<(), InboxError> {
    let needs_member = matches!(
        query.status,
        Some(StatusFilter::Unread | StatusFilter::AssignedToMe)
    );
    if needs_member && query.member.is_none() {
        return Err(InboxError::Invalid {
            field: "status",
            detail: "unread and mine are a member's view, and no member is asking: filter by \
                     open, unassigned or resolved (over the API, use a key a member created)."
                .into(),
        });
    }
    Ok(())
}

/// Whether a conversation passes the list's filters (its sort and cursor
/// do not apply to search).
fn passes(q: &ListQuery, s: &ConversationSummary) -> bool {
    if q.channel.is_some_and(|c| !s.channels.contains(&c)) {
        return false;
    }
    let status_ok = match q.status {
        None => true,
        Some(StatusFilter::Open) => s.status == Status::Open,
        Some(StatusFilter::Resolved) => s.status == Status::Resolved,
        Some(StatusFilter::Unassigned) => s.status == Status::Open && s.assignee_id.is_none(),
        Some(StatusFilter::AssignedToMe) => q.member.is_some() && s.assignee_id == q.member,
        Some(StatusFilter::Unread) => s.unread,
    };
    let author_ok = match q.author {
        None => true,
        Some(AuthorFilter::Ai) => s.ai_involved,
        Some(AuthorFilter::Human) => !s.ai_involved,
    };
    status_ok && author_ok && q.priority.is_none_or(|p| s.priority == p)
}

impl Inbox {
    /// One conversation's thread list row as `member` sees it, without its
    /// messages; `NotFound` when it is not this organization's.
    pub async fn summary(
        &self,
        org: Uuid,
        conversation: Uuid,
        member: Option<Uuid>,
    ) -> Result<ConversationSummary, InboxError> {
        self.store
            .conversations_by_id(org, &[conversation], member)
            .await?
            .pop()
            .ok_or(InboxError::NotFound)
    }

    /// Conversations and messages matching `words`, filtered as `query`
    /// says, as `member` sees them.
    pub async fn find(
        &self,
        org: Uuid,
        member: Option<Uuid>,
        mut query: ListQuery,
        words: &str,
    ) -> Result<Found, InboxError> {
        query.member = member;
        member_filter_needs(&query)?;
        let hits = self.store.search_inbox(org, words, MAX_HITS).await?;
        let mut order: Vec<Uuid> = Vec::new();
        for h in &hits {
            if !order.contains(&h.conversation_id) {
                order.push(h.conversation_id);
            }
        }
        let mut by_id: HashMap<Uuid, ConversationSummary> = self
            .store
            .conversations_by_id(org, &order, member)
            .await?
            .into_iter()
            .filter(|s| passes(&query, s))
            .map(|s| (s.id, s))
            .collect();
        let hits: Vec<SearchHit> = hits
            .into_iter()
            .filter(|h| by_id.contains_key(&h.conversation_id))
            .collect();
        let conversations = order.iter().filter_map(|id| by_id.remove(id)).collect();
        Ok(Found {
            hits,
            conversations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bos_core::inbox::{AuthorKind, Channel, Priority};

    fn conv() -> ConversationSummary {
        ConversationSummary {
            id: Uuid::nil(),
            profile_id: Uuid::nil(),
            customer_name: String::new(),
            customer_email: String::new(),
            customer_phone: String::new(),
            customer_ltv_cents: 0,
            status: Status::Open,
            assignee_id: None,
            priority: Priority::Normal,
            priority_reason: String::new(),
            last_message_at: 0,
            last_inbound_at: Some(0),
            waiting_since: None,
            last_preview: String::new(),
            last_channel: Channel::Sms,
            last_author: AuthorKind::Customer,
            channels: vec![Channel::Sms],
            ai_involved: false,
            message_count: 1,
            unread: true,
            created_at: 0,
        }
    }

    #[test]
    fn filters_apply_to_search_results() {
        let me = Uuid::now_v7();
        let c = conv();
        let q = |f: fn(&mut ListQuery)| {
            let mut q = ListQuery {
                member: Some(me),
                ..ListQuery::default()
            };
            f(&mut q);
            q
        };
        assert!(passes(&q(|_| {}), &c));
        assert!(passes(&q(|q| q.channel = Some(Channel::Sms)), &c));
        assert!(!passes(&q(|q| q.channel = Some(Channel::Email)), &c));
        assert!(passes(&q(|q| q.status = Some(StatusFilter::Unread)), &c));
        assert!(passes(
            &q(|q| q.status = Some(StatusFilter::Unassigned)),
            &c
        ));
        assert!(!passes(
            &q(|q| q.status = Some(StatusFilter::AssignedToMe)),
            &c
        ));
        assert!(!passes(&q(|q| q.status = Some(StatusFilter::Resolved)), &c));
        assert!(passes(&q(|q| q.author = Some(AuthorFilter::Human)), &c));
        assert!(!passes(&q(|q| q.author = Some(AuthorFilter::Ai)), &c));
        assert!(!passes(&q(|q| q.priority = Some(Priority::Urgent)), &c));
        let mine = ConversationSummary {
            assignee_id: Some(me),
            ..conv()
        };
        assert!(passes(
            &q(|q| q.status = Some(StatusFilter::AssignedToMe)),
            &mine
        ));
        assert!(!passes(
            &q(|q| q.status = Some(StatusFilter::Unassigned)),
            &mine
        ));
    }
}
