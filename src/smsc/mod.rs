//! The lab's SMSC (short message service centre): the node that takes short messages from
//! ESMEs over SMPP 3.4 (SMPP v3.4 Issue 1.2), stores them and hands them on, and delivers
//! MO messages and delivery receipts back to bound ESMEs. [`smpp`] is its SMPP listener: the
//! socket-free session core, the TCP driver and the [`smpp::ServiceCentre`] trait through
//! which it hands submissions to the service centre.

pub mod smpp;
