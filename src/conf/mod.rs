//! Group chat's documents (issue 18), pure codecs below the conference focus: the recipient
//! list a group is created or grown with (RFC 5366 / RFC 5368 over RFC 4826
//! `resource-lists`, [`resource_lists`]) and the roster the focus notifies (RFC 4575
//! `conference-info`, [`conference_info`]).

pub mod conference_info;
pub mod resource_lists;
