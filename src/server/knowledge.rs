//! `loket.v1.KnowledgeService` adapter.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::caller;
use super::convert::{channel_from_pb, decision_to_pb, tier_from_pb, timestamp};
use super::pb;
use super::status::status_of;
use crate::editor::{Editor, FaqFilter, FaqMask, RetrainStatus};
use crate::error::Error;
use crate::knowledge::gaps::GapGroup;
use crate::knowledge::{Faq, Translation};
use crate::paging::{self, Pager, Position};
use crate::store::{FaqRevision, StoredFaq};

/// Examples shown per knowledge gap.
const GAP_EXAMPLES: usize = 10;

pub struct KnowledgeApi {
    editor: Arc<Editor>,
}

impl KnowledgeApi {
    pub fn new(editor: Arc<Editor>) -> Self {
        Self { editor }
    }
}

fn page_size(requested: i32) -> Result<usize, Status> {
    paging::page_size(requested).map_err(status_of)
}

/// The name recorded in the revision history: the one given, else the calling key's id.
fn author<'a>(author: &'a str, key_id: &'a str) -> Result<&'a str, Status> {
    let author = author.trim();
    if author.chars().count() > 128 {
        return Err(status_of(Error::invalid("author", "longer than 128 characters")));
    }
    crate::text::check_characters("author", author, false).map_err(status_of)?;
    Ok(if author.is_empty() { key_id } else { author })
}

fn required<T>(value: Option<T>, field: &'static str) -> Result<T, Status> {
    value.ok_or_else(|| status_of(Error::invalid(field, "is required")))
}

fn faq_from_pb(faq: pb::Faq) -> Faq {
    Faq {
        id: faq.id,
        category: faq.category,
        skill: faq.skill,
        translations: faq
            .translations
            .into_iter()
            .map(|(language, t)| {
                (language, Translation { question: t.question, phrasings: t.phrasings, answer: t.answer })
            })
            .collect(),
    }
}

fn faq_to_pb(entry: &StoredFaq) -> pb::Faq {
    pb::Faq {
        id: entry.faq.id.clone(),
        category: entry.faq.category.clone(),
        skill: entry.faq.skill.clone(),
        translations: entry
            .faq
            .translations
            .iter()
            .map(|(language, t)| {
                let t = pb::FaqTranslation {
                    question: t.question.clone(),
                    phrasings: t.phrasings.clone(),
                    answer: t.answer.clone(),
                };
                (language.clone(), t)
            })
            .collect(),
        revision: entry.revision,
        retired: entry.retired,
        update_time: timestamp(entry.updated_at),
        updated_by: entry.updated_by.clone(),
    }
}

fn revision_to_pb(revision: &FaqRevision) -> pb::Revision {
    pb::Revision { version: revision.version, action: revision.action.clone(), faq: Some(faq_to_pb(&revision.entry)) }
}

fn gap_to_pb(group: &GapGroup) -> pb::KnowledgeGap {
    pb::KnowledgeGap {
        id: group.id.clone(),
        language: group.language.clone(),
        count: group.gaps.len() as i32,
        examples: group.examples(GAP_EXAMPLES),
        closest_faq_id: group.best_faq.clone().unwrap_or_default(),
        first_time: group.gaps.first().and_then(|g| timestamp(g.created_at)),
        last_time: timestamp(group.last_at()),
    }
}

fn mask_from_pb(mask: Option<prost_types::FieldMask>) -> Result<FaqMask, Status> {
    let paths = mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        return Ok(FaqMask::ALL);
    }
    let mut mask = FaqMask::default();
    for path in paths {
        match path.as_str() {
            "category" => mask.category = true,
            "skill" => mask.skill = true,
            "translations" => mask.translations = true,
            other => {
                return Err(status_of(Error::invalid(
                    "update_mask",
                    format!("unknown path {other:?} (category, skill, translations)"),
                )));
            }
        }
    }
    Ok(mask)
}

fn retrain_to_pb(status: RetrainStatus) -> pb::RetrainStatus {
    pb::RetrainStatus {
        pending: status.pending,
        running: status.running,
        completed: status.completed as i64,
        trained_version: status.trained_version,
        last_seconds: status.last_seconds.unwrap_or_default(),
        last_error: status.last_error.unwrap_or_default(),
        weak_entries: status.weak_entries,
    }
}

fn files_from_pb(files: Vec<pb::KnowledgeFile>) -> Vec<(String, String)> {
    files.into_iter().map(|f| (f.name, f.content)).collect()
}

#[tonic::async_trait]
impl pb::knowledge_service_server::KnowledgeService for KnowledgeApi {
    async fn list_faqs(&self, request: Request<pb::ListFaqsRequest>) -> Result<Response<pb::ListFaqsResponse>, Status> {
        let r = request.into_inner();
        let limit = page_size(r.page_size)?;
        let non_empty = |s: String| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let filter = FaqFilter {
            category: non_empty(r.category),
            language: non_empty(r.language),
            text: non_empty(r.text),
            include_retired: r.show_retired,
        };
        // Entries are listed by id, so the page token holds the last id of the previous page: stable while
        // entries are added or retired.
        let pager = Pager::new("faqs", &format!("{filter:?}"));
        let after = pager.after(&r.page_token).map_err(status_of)?;
        let after = after.as_ref().map(|position| position.id.as_str());
        let (faqs, more) = self.editor.list(&filter, after, limit).await.map_err(status_of)?;
        let next_page_token = match faqs.last() {
            Some(last) if more => pager.token(Position::new(0, &last.faq.id)),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListFaqsResponse { faqs: faqs.iter().map(faq_to_pb).collect(), next_page_token }))
    }

    async fn get_faq(&self, request: Request<pb::GetFaqRequest>) -> Result<Response<pb::Faq>, Status> {
        let entry = self.editor.get(request.get_ref().id.trim()).await.map_err(status_of)?;
        Ok(Response::new(faq_to_pb(&entry)))
    }

    async fn create_faq(&self, request: Request<pb::CreateFaqRequest>) -> Result<Response<pb::Faq>, Status> {
        let key_id = caller(&request)?.key_id;
        let r = request.into_inner();
        let faq = faq_from_pb(required(r.faq, "faq")?);
        let entry = self.editor.create(faq, author(&r.author, &key_id)?).await.map_err(status_of)?;
        Ok(Response::new(faq_to_pb(&entry)))
    }

    async fn update_faq(&self, request: Request<pb::UpdateFaqRequest>) -> Result<Response<pb::Faq>, Status> {
        let key_id = caller(&request)?.key_id;
        let r = request.into_inner();
        let mask = mask_from_pb(r.update_mask)?;
        let faq = required(r.faq, "faq")?;
        let revision = faq.revision;
        let entry = self
            .editor
            .update(faq_from_pb(faq), mask, revision, author(&r.author, &key_id)?)
            .await
            .map_err(status_of)?;
        Ok(Response::new(faq_to_pb(&entry)))
    }

    async fn delete_faq(&self, request: Request<pb::DeleteFaqRequest>) -> Result<Response<pb::Faq>, Status> {
        let key_id = caller(&request)?.key_id;
        let r = request.into_inner();
        let revision = (r.revision != 0).then_some(r.revision);
        let entry = self.editor.retire(r.id.trim(), revision, author(&r.author, &key_id)?).await.map_err(status_of)?;
        Ok(Response::new(faq_to_pb(&entry)))
    }

    async fn import_faqs(
        &self,
        request: Request<pb::ImportFaqsRequest>,
    ) -> Result<Response<pb::ImportFaqsResponse>, Status> {
        let key_id = caller(&request)?.key_id;
        let r = request.into_inner();
        if r.files.is_empty() {
            return Err(status_of(Error::invalid("files", "is empty")));
        }
        let summary = self
            .editor
            .import(files_from_pb(r.files), r.replace, author(&r.author, &key_id)?)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::ImportFaqsResponse {
            created: summary.created as i32,
            updated: summary.updated as i32,
            unchanged: summary.unchanged as i32,
            retired: summary.retired as i32,
        }))
    }

    async fn export_faqs(
        &self,
        _request: Request<pb::ExportFaqsRequest>,
    ) -> Result<Response<pb::ExportFaqsResponse>, Status> {
        let files = self.editor.export().await;
        let files = files.into_iter().map(|(name, content)| pb::KnowledgeFile { name, content }).collect();
        Ok(Response::new(pb::ExportFaqsResponse { files }))
    }

    async fn list_revisions(
        &self,
        request: Request<pb::ListRevisionsRequest>,
    ) -> Result<Response<pb::ListRevisionsResponse>, Status> {
        let r = request.into_inner();
        let limit = page_size(r.page_size)?;
        let faq_id = Some(r.faq_id.trim()).filter(|id| !id.is_empty());
        // Versions order every change and are never reused: the last one seen is where the next page starts.
        let pager = Pager::new("revisions", faq_id.unwrap_or_default());
        let before = pager.after(&r.page_token).map_err(status_of)?.map(|position| position.at);
        let mut revisions = self.editor.revisions(faq_id, before, limit as u32 + 1).await.map_err(status_of)?;
        let next_page_token = pager.next(&mut revisions, limit, |r| Position::new(r.version, ""));
        Ok(Response::new(pb::ListRevisionsResponse {
            revisions: revisions.iter().map(revision_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn test_query(
        &self,
        request: Request<pb::TestQueryRequest>,
    ) -> Result<Response<pb::TestQueryResponse>, Status> {
        let r = request.into_inner();
        let tier = tier_from_pb(r.tier)?.unwrap_or(crate::conversation::Tier::Standard);
        let channel = channel_from_pb(r.channel)?.unwrap_or(crate::conversation::Channel::Chat);
        let language = Some(r.language.trim()).filter(|l| !l.is_empty());
        let outcome = self.editor.test_query(&r.text, language, tier, channel).map_err(status_of)?;
        Ok(Response::new(pb::TestQueryResponse {
            decision: Some(decision_to_pb(&outcome.decision)),
            replies: outcome.replies,
        }))
    }

    async fn list_knowledge_gaps(
        &self,
        request: Request<pb::ListKnowledgeGapsRequest>,
    ) -> Result<Response<pb::ListKnowledgeGapsResponse>, Status> {
        let pb::ListKnowledgeGapsRequest { page_size: size, page_token } = request.into_inner();
        let limit = page_size(size)?;
        let pager = Pager::new("knowledge_gaps", "");
        let after = pager.after(&page_token).map_err(status_of)?;
        let mut groups = self.editor.gaps().await.map_err(status_of)?;
        let total_questions = groups.iter().map(|g| g.gaps.len()).sum::<usize>() as i32;
        // Oldest first, by the group's first question: a group keeps that position while it grows, so pages do
        // not shift as questions arrive (a ranking by size would).
        let key = |group: &GapGroup| Position::new(group.gaps.first().map_or(0, |g| g.created_at), &group.id);
        groups.sort_by_key(key);
        let (page, next_page_token) = pager.page(groups, key, false, after.as_ref(), limit);
        Ok(Response::new(pb::ListKnowledgeGapsResponse {
            gaps: page.iter().map(gap_to_pb).collect(),
            total_questions,
            next_page_token,
        }))
    }

    async fn attach_knowledge_gap(
        &self,
        request: Request<pb::AttachKnowledgeGapRequest>,
    ) -> Result<Response<pb::Faq>, Status> {
        let key_id = caller(&request)?.key_id;
        let r = request.into_inner();
        let entry = self
            .editor
            .attach_gap(r.gap_id.trim(), r.faq_id.trim(), r.revision, author(&r.author, &key_id)?)
            .await
            .map_err(status_of)?;
        Ok(Response::new(faq_to_pb(&entry)))
    }

    async fn create_faq_from_gap(
        &self,
        request: Request<pb::CreateFaqFromGapRequest>,
    ) -> Result<Response<pb::Faq>, Status> {
        let key_id = caller(&request)?.key_id;
        let r = request.into_inner();
        let faq = faq_from_pb(required(r.faq, "faq")?);
        let entry =
            self.editor.create_from_gap(r.gap_id.trim(), faq, author(&r.author, &key_id)?).await.map_err(status_of)?;
        Ok(Response::new(faq_to_pb(&entry)))
    }

    async fn get_retrain_status(
        &self,
        _request: Request<pb::GetRetrainStatusRequest>,
    ) -> Result<Response<pb::RetrainStatus>, Status> {
        Ok(Response::new(retrain_to_pb(self.editor.retrain_status())))
    }
}
