//! The buddy lists the Resource List Server serves (RFC 4662 §4.4), kept in sled.
//!
//! A list URI names its owner and the list, the GSMA RCS way: `sip:alice;pres-list=rcs@ims.lab`
//! is alice's list `rcs` (her RCS buddies). Only its owner may subscribe to it. Each user of
//! a `[presence] buddy_groups` group starts with a list `rcs` of the group's other members;
//! a list written through the admin API replaces that default and survives a restart (sled
//! tree `rls_lists`, key `owner␀name`, value the members one per line).

use std::collections::{BTreeMap, HashMap};

use crate::presence::rlmi::ResourceList;
pub use crate::presence::rls::{
    list_uri, parse_list_uri, valid_list_name, DEFAULT_LIST, LIST_PARAM,
};
use crate::sip::Uri;
use crate::store::StoreError;

/// The sled tree of stored lists.
const TREE: &str = "rls_lists";

/// Why a list cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// A list name that is not a short token.
    #[error("list name {0:?} is not 1-32 letters, digits, '-' or '_'")]
    BadName(String),
    /// An owner that is not a `sip:` AOR.
    #[error("list owner {0:?} is not a sip: address of record")]
    BadOwner(String),
    /// A member that is not a `sip:` or `tel:` URI.
    #[error("list member {0:?} is not a sip: or tel: URI")]
    BadMember(String),
    /// More members than a list holds.
    #[error("a list holds at most {0} members")]
    TooManyMembers(usize),
    /// More lists than the server holds.
    #[error("the presence server holds at most {0} lists")]
    TooManyLists(usize),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn valid_member(m: &str) -> bool {
    m.len() <= 256
        && (m.starts_with("sip:") || m.starts_with("tel:"))
        && !m.contains(['\n', '\r', '<', '>', '"', ' '])
        && Uri::parse(m).is_ok()
}

/// Every list, by URI, with the defaults of the buddy groups underneath the stored ones.
pub struct ListBook {
    tree: Option<sled::Tree>,
    lists: HashMap<String, ResourceList>,
    max_members: usize,
    max_lists: usize,
}

impl ListBook {
    /// The lists in `db` over the defaults `(owner, name, members)` (a stored list replaces
    /// the default of its name). `db` `None`: nothing is kept across restarts (tests).
    pub fn open(
        db: Option<&sled::Db>,
        defaults: &[(String, String, Vec<String>)],
        max_members: usize,
        max_lists: usize,
    ) -> Result<ListBook, StoreError> {
        let mut book = ListBook {
            tree: db.map(|d| d.open_tree(TREE)).transpose()?,
            lists: HashMap::new(),
            max_members,
            max_lists,
        };
        for (owner, name, members) in defaults {
            if let Some(uri) = list_uri(owner, name) {
                let mut l = ResourceList::new(&uri, max_members);
                for m in members.iter().take(max_members) {
                    let _ = l.add(m);
                }
                book.lists.insert(uri, l);
            }
        }
        if let Some(tree) = &book.tree {
            for kv in tree.iter() {
                let (k, v) = kv?;
                let key = String::from_utf8_lossy(&k).to_string();
                let (owner, name) = key
                    .split_once('\0')
                    .ok_or_else(|| StoreError::Corrupt(format!("list key {key:?}")))?;
                let Some(uri) = list_uri(owner, name) else {
                    return Err(StoreError::Corrupt(format!("list key {key:?}")));
                };
                let mut l = ResourceList::new(&uri, max_members);
                for m in String::from_utf8_lossy(&v).lines() {
                    let _ = l.add(m);
                }
                book.lists.insert(uri, l);
            }
        }
        Ok(book)
    }

    /// The list `uri` stands for.
    pub fn get(&self, uri: &str) -> Option<&ResourceList> {
        let (owner, name) = parse_list_uri(uri)?;
        self.lists.get(&list_uri(&owner, &name)?)
    }

    /// `owner`'s lists: name -> members.
    pub fn lists_of(&self, owner: &str) -> BTreeMap<String, Vec<String>> {
        self.lists
            .values()
            .filter_map(|l| {
                let (o, name) = parse_list_uri(l.uri())?;
                (o == owner).then(|| (name, l.members().to_vec()))
            })
            .collect()
    }

    /// Writes `owner`'s list `name` with `members` (in sled and here; the caller awaits the
    /// store's `durable()` before it answers). Returns the list as it is now.
    pub fn put(
        &mut self,
        owner: &str,
        name: &str,
        members: &[String],
    ) -> Result<ResourceList, ListError> {
        if !valid_list_name(name) {
            return Err(ListError::BadName(name.to_string()));
        }
        let uri = list_uri(owner, name)
            .filter(|_| Uri::parse(owner).is_ok() && !owner.contains(';'))
            .ok_or_else(|| ListError::BadOwner(owner.to_string()))?;
        if let Some(bad) = members.iter().find(|m| !valid_member(m)) {
            return Err(ListError::BadMember(bad.clone()));
        }
        if members.len() > self.max_members {
            return Err(ListError::TooManyMembers(self.max_members));
        }
        if !self.lists.contains_key(&uri) && self.lists.len() >= self.max_lists {
            return Err(ListError::TooManyLists(self.max_lists));
        }
        let mut l = ResourceList::new(&uri, self.max_members);
        for m in members {
            let _ = l.add(m);
        }
        if let Some(tree) = &self.tree {
            tree.insert(
                format!("{owner}\0{name}").as_bytes(),
                l.members().join("\n").as_bytes(),
            )
            .map_err(StoreError::from)?;
        }
        self.lists.insert(uri, l.clone());
        Ok(l)
    }

    /// Empties `owner`'s list `name` (kept empty, so that the buddy group's default does not
    /// come back at the next start). Returns the list as it is now, if it existed.
    pub fn clear(&mut self, owner: &str, name: &str) -> Result<Option<ResourceList>, ListError> {
        let Some(uri) = list_uri(owner, name) else {
            return Ok(None);
        };
        if !self.lists.contains_key(&uri) {
            return Ok(None);
        }
        self.put(owner, name, &[]).map(Some)
    }

    /// How many lists there are.
    pub fn len(&self) -> usize {
        self.lists.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "sip:alice@ims.lab";

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn list_uris_name_their_owner_and_list() {
        let uri = list_uri(ALICE, "rcs").unwrap();
        assert_eq!(uri, "sip:alice;pres-list=rcs@ims.lab");
        assert_eq!(
            parse_list_uri(&uri),
            Some((ALICE.to_string(), "rcs".to_string()))
        );
        assert_eq!(
            parse_list_uri("sip:alice;pres-list=work@ims.lab;transport=tcp"),
            Some((ALICE.to_string(), "work".to_string()))
        );
        assert_eq!(parse_list_uri("sip:alice@ims.lab"), None);
        assert_eq!(parse_list_uri("sip:alice;pres-list=@ims.lab"), None);
        assert_eq!(parse_list_uri("tel:+1555"), None);
        assert_eq!(list_uri("tel:+1555", "rcs"), None);
    }

    #[test]
    fn defaults_then_stored_lists_which_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let defaults = vec![(
            ALICE.to_string(),
            DEFAULT_LIST.to_string(),
            s(&["sip:bob@ims.lab", "sip:carol@ims.lab"]),
        )];
        let uri = list_uri(ALICE, "rcs").unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let mut book = ListBook::open(Some(&db), &defaults, 3, 10).unwrap();
            assert_eq!(book.get(&uri).unwrap().members().len(), 2);
            book.put(ALICE, "rcs", &s(&["sip:dave@ims.lab"])).unwrap();
            book.put(ALICE, "work", &s(&["tel:+15550002"])).unwrap();
            assert!(matches!(
                book.put(ALICE, "x", &s(&["a", "b", "c", "d"])),
                Err(ListError::BadMember(_))
            ));
            assert!(matches!(
                book.put(
                    ALICE,
                    "x",
                    &s(&["sip:a@h", "sip:b@h", "sip:c@h", "sip:d@h"])
                ),
                Err(ListError::TooManyMembers(3))
            ));
            assert!(matches!(
                book.put(ALICE, "no way", &[]),
                Err(ListError::BadName(_))
            ));
            assert!(matches!(
                book.put("sip:a;x@h", "rcs", &[]),
                Err(ListError::BadOwner(_))
            ));
            db.flush().unwrap();
        }
        let db = sled::open(dir.path()).unwrap();
        let mut book = ListBook::open(Some(&db), &defaults, 3, 3).unwrap();
        assert_eq!(book.get(&uri).unwrap().members(), ["sip:dave@ims.lab"]);
        assert_eq!(
            book.lists_of(ALICE).keys().collect::<Vec<_>>(),
            ["rcs", "work"]
        );
        assert_eq!(
            book.clear(ALICE, "work").unwrap().unwrap().members().len(),
            0
        );
        assert!(book.clear(ALICE, "none").unwrap().is_none());
        book.put("sip:bob@ims.lab", "rcs", &[]).unwrap();
        assert!(matches!(
            book.put("sip:carol@ims.lab", "rcs", &[]),
            Err(ListError::TooManyLists(3))
        ));
    }
}
