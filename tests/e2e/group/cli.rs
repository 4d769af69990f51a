//! `rcslab ue … group` as scripts use it.
