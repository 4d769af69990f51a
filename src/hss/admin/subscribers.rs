//! The admin API's `/subscribers` routes (see the table in [`super`]): provisioning from
//! [`SubscriberConfig`] (one or many, with one flush), the secret-free [`SubscriberView`],
//! `GET` by IMPI pages (RFC 8288 `Link` to the next), `DELETE`, and `PUT .../ifc`
//! (TS 29.228 Annex B iFCs). A change to a registered user reaches its serving S-CSCF as an
//! RTR or a PPR (TS 29.228 §6.1.3, §6.1.5).

use std::sync::Arc;

use axum::extract::State;
use axum::http::Uri;
use hyper::{Response, StatusCode};

use super::{
    error, json, json_content, percent_decode, percent_encode, query_param, read_body, store_error,
    Api, Body,
};
use crate::config::{IfcConfig, SubscriberConfig};
use crate::store::{default_impi, AkaCredentials, Store, StoreError, Subscriber};

/// Subscribers per page of `GET /subscribers` when the request names no `limit`.
pub const PAGE_DEFAULT: usize = 100;
/// Largest `limit` of `GET /subscribers`.
pub const PAGE_MAX: usize = 1000;

/// Builds a stored subscriber from its provisioning form: the IMPI defaults to `user@domain`,
/// missing AKA keys are generated at random, a missing `ifc` list means `default_ifc`.
///
/// `existing`: the stored subscriber this spec updates, whose K, OPc, AMF and SQN stay when
/// the spec does not give them.
pub fn build_subscriber(
    spec: &SubscriberConfig,
    default_ifc: &[IfcConfig],
    existing: Option<&Subscriber>,
) -> Result<Subscriber, StoreError> {
    let first = spec
        .impu
        .first()
        .ok_or_else(|| StoreError::Invalid("at least one public identity is needed".into()))?;
    let impi = match &spec.impi {
        Some(i) if !i.is_empty() => i.clone(),
        _ => default_impi(first)?,
    };
    let impus = spec
        .impu
        .iter()
        .map(|i| crate::store::canonical_identity(i))
        .collect::<Result<Vec<_>, _>>()?;
    let random_hex = || hex::encode(rand::random::<[u8; 16]>());
    let ifcs = spec
        .ifc
        .as_deref()
        .unwrap_or(default_ifc)
        .iter()
        .map(|i| i.to_profile())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    Ok(Subscriber {
        impi,
        impus,
        password: spec.password.clone(),
        aka: AkaCredentials {
            k: spec
                .k
                .clone()
                .or_else(|| existing.map(|e| e.aka.k.clone()))
                .unwrap_or_else(random_hex),
            opc: spec
                .opc
                .clone()
                .or_else(|| existing.map(|e| e.aka.opc.clone()))
                .unwrap_or_else(random_hex),
            amf: spec
                .amf
                .clone()
                .or_else(|| existing.map(|e| e.aka.amf.clone()))
                .unwrap_or_else(|| "8000".into()),
            sqn: spec
                .sqn
                .or_else(|| existing.map(|e| e.aka.sqn))
                .unwrap_or(32),
        },
        ifcs,
    })
}

/// Validates and stores many subscribers with one flush; nothing is written if one is invalid.
pub fn add_subscribers(
    store: &Store,
    specs: &[SubscriberConfig],
    default_ifc: &[IfcConfig],
) -> Result<Vec<Subscriber>, StoreError> {
    let subs = specs
        .iter()
        .map(|s| {
            let id = s.impi.clone().or_else(|| s.impu.first().cloned());
            let existing = match id {
                Some(id) => store.find(&id)?,
                None => None,
            };
            build_subscriber(s, default_ifc, existing.as_ref())
        })
        .collect::<Result<Vec<_>, _>>()?;
    for s in &subs {
        store.put_subscriber(s)?;
    }
    store.flush()?;
    Ok(subs)
}

/// A subscriber as the API shows it: everything but the secrets, and whether each is set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubscriberView {
    /// Private identity.
    pub impi: String,
    /// Public identities, the default one first.
    pub impus: Vec<String>,
    /// A SIP Digest password is set.
    pub password_set: bool,
    /// AKA: whether K and OPc are set, and AMF and the next SQN.
    pub aka: AkaView,
    /// Initial filter criteria.
    #[serde(default)]
    pub ifcs: Vec<crate::profile::InitialFilterCriteria>,
}

/// The AKA part of [`SubscriberView`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AkaView {
    /// K is set.
    pub k_set: bool,
    /// OPc is set.
    pub opc_set: bool,
    /// Authentication management field.
    pub amf: String,
    /// The next SQN the HSS will use.
    pub sqn: u64,
}

impl From<&Subscriber> for SubscriberView {
    fn from(s: &Subscriber) -> Self {
        SubscriberView {
            impi: s.impi.clone(),
            impus: s.impus.clone(),
            password_set: !s.password.is_empty(),
            aka: AkaView {
                k_set: !s.aka.k.is_empty(),
                opc_set: !s.aka.opc.is_empty(),
                amf: s.aka.amf.clone(),
                sqn: s.aka.sqn,
            },
            ifcs: s.ifcs.clone(),
        }
    }
}

fn views<'a>(subs: impl IntoIterator<Item = &'a Subscriber>) -> Vec<SubscriberView> {
    subs.into_iter().map(SubscriberView::from).collect()
}

/// `GET /subscribers?limit=N&after=IMPI`: one page, ordered by IMPI.
fn subscribers_page(store: &Store, uri: &Uri) -> Response<Body> {
    let limit = match query_param(uri, "limit") {
        None => PAGE_DEFAULT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=PAGE_MAX).contains(&n) => n,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad limit",
                    format!("limit must be 1..={PAGE_MAX}, not '{l}'"),
                )
            }
        },
    };
    let after = query_param(uri, "after").unwrap_or_default();
    match page_after(store, &after, limit) {
        Ok((subs, next)) => {
            let mut r = json(StatusCode::OK, &views(&subs));
            if let Some(n) = next {
                let link = format!(
                    "</subscribers?limit={limit}&after={}>; rel=\"next\"",
                    percent_encode(&n)
                );
                if let Ok(v) = hyper::header::HeaderValue::from_str(&link) {
                    r.headers_mut().insert(hyper::header::LINK, v);
                }
            }
            r
        }
        Err(e) => store_error(e),
    }
}

/// Up to `limit` subscribers whose IMPI sorts after `after` (all from the start when empty),
/// and the IMPI to continue after when there may be more.
///
/// It reads the store's `subscribers` tree (IMPI -> JSON) with a range scan, so a page costs
/// its own size and not the whole base. It belongs in `store` as `Store::subscribers_page`; it
/// lives here until the store's owners take it.
fn page_after(
    store: &Store,
    after: &str,
    limit: usize,
) -> Result<(Vec<Subscriber>, Option<String>), StoreError> {
    use std::ops::Bound;
    let tree = store.db().open_tree("subscribers")?;
    let start = if after.is_empty() {
        Bound::Unbounded
    } else {
        Bound::Excluded(after.as_bytes().to_vec())
    };
    let mut out = Vec::with_capacity(limit.min(PAGE_MAX));
    let mut more = false;
    for kv in tree.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
        let (_, v) = kv?;
        if out.len() == limit {
            more = true;
            break;
        }
        out.push(
            serde_json::from_slice::<Subscriber>(&v)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        );
    }
    let next = more.then(|| out.last().map(|s| s.impi.clone())).flatten();
    Ok((out, next))
}

/// The `{id}` of `/subscribers/{id}[/ifc]`, percent-decoded by [`percent_decode`] (which
/// keeps a malformed escape as it is, where axum's `Path` would refuse it).
fn subscriber_id(uri: &Uri) -> String {
    percent_decode(uri.path().trim_matches('/').split('/').nth(1).unwrap_or(""))
}

/// `GET /subscribers[?limit=N&after=IMPI]`.
pub(super) async fn subscribers_list(State(api): State<Arc<Api>>, uri: Uri) -> Response<Body> {
    subscribers_page(api.hss.store(), &uri)
}

/// `POST /subscribers`: one subscriber or an array of them; tells the serving S-CSCF what
/// changed for those registered.
pub(super) async fn subscribers_add(
    State(api): State<Arc<Api>>,
    req: axum::extract::Request,
) -> Response<Body> {
    let hss = &api.hss;
    let store = hss.store().clone();
    if let Err(r) = json_content(&req) {
        return *r;
    }
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let specs: Vec<SubscriberConfig> = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v @ serde_json::Value::Array(_)) => match serde_json::from_value(v) {
            Ok(s) => s,
            Err(e) => return error(StatusCode::BAD_REQUEST, "invalid subscriber list", e),
        },
        Ok(v) => match serde_json::from_value(v) {
            Ok(s) => vec![s],
            Err(e) => return error(StatusCode::BAD_REQUEST, "invalid subscriber", e),
        },
        Err(e) => return error(StatusCode::BAD_REQUEST, "malformed JSON", e),
    };
    // What each subscriber was before, to tell the serving S-CSCF about changes.
    let before: Vec<Option<(Subscriber, crate::store::HssState)>> = specs
        .iter()
        .map(|s| {
            let id = s
                .impi
                .clone()
                .or_else(|| s.impu.first().cloned())
                .unwrap_or_default();
            let old = store.find(&id).ok().flatten()?;
            let st = store.hss_state(&old.impi).unwrap_or_default();
            Some((old, st))
        })
        .collect();
    let (st, api2) = (store.clone(), api.clone());
    match tokio::task::spawn_blocking(move || add_subscribers(&st, &specs, &api2.default_ifc)).await
    {
        Ok(Ok(v)) => {
            for (new, old) in v.iter().zip(before) {
                let Some((old, state)) = old else { continue };
                if state.scscf.is_none() {
                    continue;
                }
                if old.password != new.password
                    || old.aka.k != new.aka.k
                    || old.aka.opc != new.aka.opc
                {
                    hss.terminate_registration(
                        new,
                        &state,
                        crate::diameter::cx::ReasonCode::PermanentTermination,
                        "credentials changed",
                    )
                    .await;
                } else if old.ifcs != new.ifcs || old.impus != new.impus {
                    hss.push_profile(new, &state).await;
                }
            }
            json(StatusCode::CREATED, &views(&v))
        }
        Ok(Err(e)) => store_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal error", e),
    }
}

/// `GET /subscribers/{id}`.
pub(super) async fn subscriber_show(State(api): State<Arc<Api>>, uri: Uri) -> Response<Body> {
    let id = subscriber_id(&uri);
    match api.hss.store().find(&id) {
        Ok(Some(s)) => json(StatusCode::OK, &SubscriberView::from(&s)),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such subscriber", id),
        Err(e) => store_error(e),
    }
}

/// `DELETE /subscribers/{id}`: removes it, durably, and ends its registration.
pub(super) async fn subscriber_remove(State(api): State<Arc<Api>>, uri: Uri) -> Response<Body> {
    let id = subscriber_id(&uri);
    let (hss, store) = (&api.hss, api.hss.store());
    let state = store
        .find(&id)
        .ok()
        .flatten()
        .map(|s| store.hss_state(&s.impi).unwrap_or_default());
    match store.remove(&id) {
        Ok(Some(s)) => {
            if let Err(e) = store.durable().await {
                return store_error(e);
            }
            if let Some(st) = state.filter(|st| st.scscf.is_some()) {
                hss.terminate_registration(
                    &s,
                    &st,
                    crate::diameter::cx::ReasonCode::PermanentTermination,
                    "subscription removed",
                )
                .await;
            }
            json(StatusCode::OK, &SubscriberView::from(&s))
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no such subscriber", id),
        Err(e) => store_error(e),
    }
}

/// `PUT /subscribers/{id}/ifc`: the body is `[IfcConfig]`.
pub(super) async fn subscriber_ifc(
    State(api): State<Arc<Api>>,
    req: axum::extract::Request,
) -> Response<Body> {
    let id = subscriber_id(req.uri());
    if let Err(r) = json_content(&req) {
        return *r;
    }
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let ifc: Vec<IfcConfig> = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid iFC list", e),
    };
    set_ifc(&api.hss, &id, ifc).await
}

/// `PUT /subscribers/{id}/ifc`: replaces the iFCs (nothing else), tells the serving S-CSCF.
async fn set_ifc(hss: &crate::hss::Hss, id: &str, ifc: Vec<IfcConfig>) -> Response<Body> {
    let store = hss.store().clone();
    let current = match store.find(id) {
        Ok(Some(s)) => s,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such subscriber", id),
        Err(e) => return store_error(e),
    };
    let ifcs = match ifc
        .iter()
        .map(|i| i.to_profile())
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid iFC", e),
    };
    let mut new = current.clone();
    new.ifcs = ifcs;
    let st = store.clone();
    let written = new.clone();
    match tokio::task::spawn_blocking(move || st.put_subscriber(&written).and_then(|_| st.flush()))
        .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return store_error(e),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal error", e),
    }
    let state = store.hss_state(&new.impi).unwrap_or_default();
    if state.scscf.is_some() && current.ifcs != new.ifcs {
        hss.push_profile(&new, &state).await;
    }
    json(StatusCode::OK, &SubscriberView::from(&new))
}
