// rcslab chat: a small WebRSF client (plain JavaScript, no framework, no build step).
//
// How it talks to the gateway (all under /webrsf/v1/{user}):
//   POST   Session                       log in, get a bearer token (it ends after `expires` s)
//   PUT    Session                       a new token before the old one ends
//   POST   Session/Ticket                a single-use ticket for the event stream
//   GET    Notification/SSE?ticket&cursor events (EventSource); cursor = last event id we handled
//   GET    Chat/Media                     received messages not yet acknowledged (NDJSON)
//   PUT    Chat/{id} {delivered}          acknowledge one (IMDN delivered; accepts a new chat)
//   PUT    Chat/{id}/Messages/{m}/Status  {displayed} once the message was on screen
//   POST   Chat {to,text}                 first message to a peer; POST Chat/{id}/Messages later ones
//   POST   Chat/{id}/Composing {active}   typing indicator (RFC 3994 isComposing)
//   GET    Chat, Chat/{id}/Messages       conversations and their history, after a page reload
//   GET    Buddies                        the buddy list (online, away, busy, offline, pending;
//                                         note; last seen), kept current by `presence` events
//   GET|POST Group {subject,participants}  group chats; make one (the others are invited)
//   GET    Group/{id}, Group/{id}/Messages a group (subject, members) and its conversation, after a reload
//   POST   Group/{id}/Messages {text}     a message to the group
//   PUT    Group/{id}/Messages/{m}/Status {displayed} once a member's message was on screen
//   POST|DELETE Group/{id}/Participants   add / remove a member (the gateway may answer 501)
//   DELETE Group/{id}                     leave the group
//   POST   FileTransfer?to&name, Group/{id}/FileTransfer?name   send a file (files.js)
//   GET    FileTransfer/{fileId}[/Thumbnail]                      a file offered to us (files.js)
// Group events: groupChatEventNotification (created, invited, joined, closed),
// chatMessageNotification (a member's message, in the event), participantStatusNotification
// (the roster changed), messageStatusNotification with group_id (a member got / read ours).
// The token, the user and the cursor live in sessionStorage, so a reload loses nothing:
// history comes from GET Chat, unacknowledged messages from Chat/Media, and every event
// after the cursor is replayed by the SSE stream.
'use strict';

const STORE = 'rcslab.webrsf';
const EVENT_TYPES = ['chat', 'messageNotification', 'messageStatusNotification', 'isComposing', 'chatEvent', 'sessionEnded', 'presence',
  'groupChatEventNotification', 'chatMessageNotification', 'participantStatusNotification'];
const STATE_WORDS = { online: 'online', away: 'away', busy: 'busy', offline: 'offline', pending: 'waiting for approval' };
// Our messages only move forward: a late "delivered" never hides "displayed".
const RANK = { sending: 0, sent: 1, failed: 1.5, delivered: 2, displayed: 3 };
const TICK = { sending: '…', sent: '✓', delivered: '✓✓', displayed: '✓✓', failed: '!' };
const IDLE_AFTER_MS = 3000;     // we send "idle" after this long without typing
const TYPING_TIMEOUT_MS = 60000; // we hide a peer's indicator if no "idle" ever comes

const $ = (id) => document.getElementById(id);

let session = null;            // { user, uri, token, cursor, open }
let conversations = [];        // { peer, id, state, messages: [], el, typing, typingTimer }
let current = null;            // the conversation shown in the pane
const byMessageId = new Map(); // message_id -> message, for status reports
const earlyStatus = new Map(); // status reports that arrived before our POST returned
const lateChatEvents = new Map(); // chatEvents for an instance id we do not know yet
let source = null;             // the EventSource
let composing = null;          // the conversation we told "active", or null
let idleTimer = null;
const buddies = new Map();     // uri -> { user, uri, state, note, last_seen }

// ---------- session ----------

function save() {
  sessionStorage.setItem(STORE, JSON.stringify(session));
}

function load() {
  try { return JSON.parse(sessionStorage.getItem(STORE)); } catch { return null; }
}

class Unauthorized extends Error {}

// One call to the gateway. JSON in, JSON (or NDJSON as an array) out; errors throw.
async function api(method, path, body) {
  const res = await fetch(`/webrsf/v1/${encodeURIComponent(session.user)}${path}`, {
    method,
    headers: { Authorization: `Bearer ${session.token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) {
    logout('Your session has ended: please log in again.');
    throw new Unauthorized('401');
  }
  const type = res.headers.get('Content-Type') || '';
  const text = await res.text();
  if (!res.ok) {
    let err = {};
    try { err = JSON.parse(text); } catch { /* not JSON */ }
    throw new Error(`${method} ${path}: ${res.status} ${err.error || ''} ${err.detail || text}`.trim());
  }
  if (type.includes('ndjson')) return text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  return text && type.includes('json') ? JSON.parse(text) : text;
}

function report(e) {
  if (e instanceof Unauthorized) return;
  console.error(e);
  const box = $('error');
  box.textContent = e.message || String(e);
  box.hidden = false;
  clearTimeout(report.timer);
  report.timer = setTimeout(() => { box.hidden = true; }, 10000);
}

async function login(user, password) {
  user = user.trim().replace(/^sip:/, '').replace(/@.*$/, '');
  const res = await fetch(`/webrsf/v1/${encodeURIComponent(user)}/Session`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ password }),
  });
  if (!res.ok) {
    const err = await res.json().catch(() => ({}));
    throw new Error(res.status === 401 ? 'Wrong user or password.' : `Login failed: ${res.status} ${err.detail || ''}`);
  }
  const body = await res.json();
  session = { user, uri: body.user, token: body.token, cursor: null, open: null,
              expiresAt: Date.now() + body.expires * 1000 };
  save();
  await start();
}

// The token ends `expires` seconds after it was issued: a new one at four fifths of that.
let refreshTimer = null;
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!session || !session.expiresAt) return;
  const wait = Math.max(1000, (session.expiresAt - Date.now()) * 0.8);
  refreshTimer = setTimeout(async () => {
    if (!session) return;
    try {
      const body = await api('PUT', '/Session');
      session.token = body.token;
      session.expiresAt = Date.now() + body.expires * 1000;
      save();
      scheduleRefresh();
    } catch (e) { report(e); }
  }, wait);
}

function logout(message) {
  if (source) source.close();
  source = null;
  sessionStorage.removeItem(STORE);
  session = null;
  conversations = [];
  current = null;
  byMessageId.clear();
  earlyStatus.clear();
  lateChatEvents.clear();
  buddies.clear();
  renderBuddies();
  groups.clear();
  earlyGroupStatus.clear();
  currentGroup = null;
  renderGroups();
  $('group-pane').hidden = true;
  $('conversations').replaceChildren();
  $('messages').replaceChildren();
  $('chat-view').hidden = true;
  $('whoami').hidden = true;
  $('login-view').hidden = false;
  if (message) report(new Error(message));
  $('login-user').focus();
}

// After login or a reload: history first, then unacknowledged messages, then events.
async function start() {
  $('login-view').hidden = true;
  $('chat-view').hidden = false;
  $('whoami').hidden = false;
  $('me').textContent = session.user;
  // Past conversations, as T-IM keeps them (they outlive logins and chat instances).
  for (const h of await api('GET', '/History?limit=50')) {
    const conv = conversationFor(null, normalisePeer(h.peer));
    for (const m of await api('GET', `/History/${encodeURIComponent(h.peer)}?last=50`)) {
      if (m.text == null) continue; // not a text message (an IMDN, a file)
      // T-IM's "pending" is our "sent": the network has it, the peer does not yet.
      const status = m.status === 'pending' ? 'sent' : m.status;
      addHistory(conv, { ...m, status, direction: m.sender === session.user ? 'out' : 'in' });
    }
  }
  for (const c of await api('GET', '/Chat')) {
    const conv = conversationFor(c.instance_id || lastSegment(c.instance), c.peer);
    conv.state = c.state;
    for (const m of await api('GET', `/Chat/${conv.id}/Messages`)) addHistory(conv, m);
  }
  await fetchMedia();
  await fetchBuddies();
  await fetchGroups();
  const reopen = conversations.find((c) => c.peer === session.open) || conversations[0];
  if (reopen) openConversation(reopen);
  renderConversations();
  scheduleRefresh();
  connect();
}

// ---------- conversations and messages ----------

function lastSegment(uri) {
  return String(uri || '').split('/').pop();
}

// "sip:carol@ims.lab" is shown as "carol", like the gateway's sender field.
function normalisePeer(peer) {
  peer = peer.trim();
  const home = (session.uri || '').replace(/^sip:[^@]*/, '');
  if (home && peer.startsWith('sip:') && peer.endsWith(home)) return peer.slice(4, -home.length);
  return peer;
}

// One conversation per peer; its id is the gateway's chat instance (null until the first send).
function conversationFor(id, peer) {
  let conv = id ? conversations.find((c) => c.id === id) : null;
  if (!conv && peer) conv = conversations.find((c) => c.peer === peer);
  if (!conv) {
    conv = { peer: peer || id, id: null, state: 'new', messages: [], typing: null, typingTimer: null };
    conversations.push(conv);
  }
  if (id) conv.id = id;
  renderConversations();
  return conv;
}

// Our POST Chat returned the instance id. Events for it may have come first (and made a
// conversation of their own, or a chatEvent we could not place): fold them in.
function setInstance(conv, id) {
  const dup = conversations.find((c) => c !== conv && c.id === id);
  if (dup) {
    conv.messages = [...dup.messages, ...conv.messages];
    conversations = conversations.filter((c) => c !== dup);
    if (current === dup) current = conv;
  }
  conv.id = id;
  if (lateChatEvents.has(id)) applyChatEvent(conv, lateChatEvents.get(id));
  lateChatEvents.delete(id);
  if (conv === current) openConversation(conv);
  renderConversations();
}

function addMessage(conv, msg) {
  if (msg.message_id) {
    if (byMessageId.has(msg.message_id)) return byMessageId.get(msg.message_id);
    byMessageId.set(msg.message_id, msg);
  }
  msg.el = renderMessage(msg);
  conv.messages.push(msg);
  if (conv === current) {
    $('messages').append(msg.el);
    scrollDown();
  }
  renderConversations();
  return msg;
}

function addHistory(conv, m) {
  return addMessage(conv, {
    message_id: m.message_id, direction: m.direction, sender: m.sender, text: m.text,
    datetime: m.datetime, status: m.status, file: m.file,
    acked: true, displayedSent: m.direction === 'in' && m.status === 'displayed',
  });
}

function setStatus(msg, status) {
  if (msg.direction === 'out' && (RANK[status] ?? -1) <= (RANK[msg.status] ?? -1)) return;
  msg.status = status;
  updateStatus(msg);
}

// Every message we received and have not acknowledged yet.
let mediaRun = null;
let mediaAgain = false;
function fetchMedia() {
  if (mediaRun) { mediaAgain = true; return mediaRun; }
  mediaRun = (async () => {
    do {
      mediaAgain = false;
      for (const m of await api('GET', '/Chat/Media')) await receive(m);
    } while (mediaAgain);
  })().finally(() => { mediaRun = null; });
  return mediaRun;
}

async function receive(m) {
  const conv = conversationFor(m.instance_id || lastSegment(m.instance), m.sender);
  const msg = addMessage(conv, {
    message_id: m.message_id, direction: 'in', sender: m.sender, text: m.text,
    datetime: m.datetime, status: 'received', acked: false, displayedSent: false, file: m.file,
  });
  setTyping(conv, null);
  if (!msg.ackSent) {
    msg.ackSent = true;
    msg.acked = false;
    await api('PUT', `/Chat/${conv.id}`, { status: 'delivered', message_id: m.message_id });
    msg.acked = true;
    if (conv.state === 'initiate' || conv.state === 'new') conv.state = 'active';
  }
  if (!current && !currentGroup) openConversation(conv);
  markDisplayed(conv);
  renderConversations();
}

// Tell the sender we showed its messages: only for the open conversation of a visible page.
function markDisplayed(conv) {
  if (conv !== current || document.hidden) return;
  for (const msg of conv.messages) {
    if (msg.direction !== 'in' || !msg.acked || msg.displayedSent) continue;
    msg.displayedSent = true;
    api('PUT', `/Chat/${conv.id}/Messages/${encodeURIComponent(msg.message_id)}/Status`, { status: 'displayed' })
      .then(() => { msg.status = 'displayed'; updateStatus(msg); renderConversations(); })
      .catch((e) => { msg.displayedSent = false; report(e); });
  }
}

async function send(conv, text) {
  const msg = addMessage(conv, {
    direction: 'out', sender: session.user, text, status: 'sending', datetime: new Date().toISOString(),
  });
  try {
    await setComposing(false);
    let r;
    if (!conv.id || conv.state === 'closed') {
      r = await api('POST', '/Chat', { to: conv.peer, text });
      conv.state = 'initiate';
      setInstance(conv, r.instance_id || lastSegment(r.instance));
    } else {
      r = await api('POST', `/Chat/${conv.id}/Messages`, { text });
    }
    msg.message_id = r.message_id;
    byMessageId.set(r.message_id, msg);
    setStatus(msg, 'sent');
    for (const s of earlyStatus.get(r.message_id) || []) setStatus(msg, s);
    earlyStatus.delete(r.message_id);
  } catch (e) {
    setStatus(msg, 'failed');
    report(e);
  }
  renderConversations();
}

// ---------- typing indicator (ours and theirs) ----------

async function setComposing(active) {
  clearTimeout(idleTimer);
  const conv = active ? current : composing;
  if (!conv || !conv.id || (composing === conv) === active) return;
  composing = active ? conv : null;
  await api('POST', `/Chat/${conv.id}/Composing`, { active }).catch(report);
}

function onInput() {
  if (!current || !current.id) return;
  if ($('compose-input').value === '') { setComposing(false); return; }
  if (composing !== current) setComposing(true);
  clearTimeout(idleTimer);
  idleTimer = setTimeout(() => setComposing(false), IDLE_AFTER_MS);
}

function setTyping(conv, who) {
  conv.typing = who;
  clearTimeout(conv.typingTimer);
  if (who) conv.typingTimer = setTimeout(() => setTyping(conv, null), TYPING_TIMEOUT_MS);
  if (conv === current) renderTyping();
}

// ---------- events ----------

// EventSource cannot send Authorization, and a token in a URL ends up in logs: the stream is
// opened with a single-use ticket, a new one for each (re)connection.
async function connect() {
  if (source) source.close();
  source = null;
  let ticket;
  try {
    ticket = (await api('POST', '/Session/Ticket')).ticket;
  } catch (e) {
    report(e);
    if (session) setTimeout(connect, 2000);
    return;
  }
  if (!session) return;
  let url = `/webrsf/v1/${encodeURIComponent(session.user)}/Notification/SSE?ticket=${encodeURIComponent(ticket)}`;
  if (session.cursor != null) url += `&cursor=${session.cursor}`;
  setConnection('connecting');
  const es = new EventSource(url);
  source = es;
  es.onopen = () => {
    setConnection('open');
    fetchMedia().catch(report); // anything that arrived while we were not listening
    fetchBuddies().catch(report); // presence events older than the replay buffer are gone
  };
  es.onerror = () => {
    if (source !== es) return;
    setConnection('connecting');
    // The browser's own retry would present the spent ticket again: we reconnect with a new
    // one. A 401 on the way (checked by api()) means log in again.
    es.close();
    setTimeout(() => {
      if (source !== es || !session) return;
      api('GET', '/Chat').then(() => connect(), (e) => { report(e); if (session) setTimeout(connect, 2000); });
    }, 1000);
  };
  for (const type of EVENT_TYPES) {
    es.addEventListener(type, (e) => {
      try { onEvent(JSON.parse(e.data)); } catch (err) { report(err); }
    });
  }
}

function onEvent(ev) {
  console.debug('event', JSON.stringify(ev)); // open the browser's console to watch them
  if (typeof ev.id === 'number') {
    if (session.cursor != null && ev.id <= session.cursor) return; // already handled
    session.cursor = ev.id;
    save();
  }
  const id = ev.instance_id || lastSegment(ev.instance);
  const data = ev.data || {};
  if (data.group_id) { onGroupEvent(ev.type, data); return; }
  switch (ev.type) {
    case 'sessionEnded': // the network ended our registration (e.g. the password changed)
      logout('Your session has ended: please log in again.');
      return;
    case 'chat': { // someone opened a chat with us; its first message waits in Chat/Media
      const conv = conversationFor(id, data.sender);
      if (conv.state === 'new' || conv.state === 'closed') conv.state = 'initiate';
      fetchMedia().catch(report);
      break;
    }
    case 'messageNotification':
      fetchMedia().catch(report);
      break;
    case 'messageStatusNotification': {
      const msg = byMessageId.get(data.message_id);
      if (msg) setStatus(msg, data.status);
      else earlyStatus.set(data.message_id, [...(earlyStatus.get(data.message_id) || []), data.status]);
      break;
    }
    case 'isComposing':
      setTyping(conversationFor(id, data.sender), data.state === 'active' ? data.sender : null);
      break;
    case 'chatEvent': {
      const conv = conversations.find((c) => c.id === id);
      if (conv) applyChatEvent(conv, data);
      else lateChatEvents.set(id, data);
      break;
    }
    case 'presence': // a buddy changed (or left the list)
      if (data.removed) buddies.delete(data.uri);
      else if (data.uri) buddies.set(data.uri, data);
      renderBuddies();
      break;
  }
}

// ---------- buddies ----------

async function fetchBuddies() {
  const list = await api('GET', '/Buddies');
  buddies.clear();
  for (const b of list.buddies || []) buddies.set(b.uri, b);
  renderBuddies();
}

// "last seen 18:02" today, "last seen 30 Nov, 18:02" before.
function lastSeenText(stamp) {
  const t = new Date(stamp);
  if (Number.isNaN(t.getTime())) return `last seen ${stamp}`;
  const today = new Date().toDateString() === t.toDateString();
  const opts = today ? { hour: '2-digit', minute: '2-digit' }
    : { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' };
  return `last seen ${t.toLocaleString(undefined, opts)}`;
}

function renderBuddies() {
  const sorted = [...buddies.values()].sort((a, b) => a.user.localeCompare(b.user));
  $('no-buddies').hidden = sorted.length > 0;
  $('buddies').replaceChildren(...sorted.map((b) => {
    const li = document.createElement('li');
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'buddy';
    btn.dataset.testid = `buddy-${b.user}`;
    btn.dataset.state = b.state;
    btn.title = `Chat with ${b.user}`;
    const dot = document.createElement('span');
    dot.className = 'dot';
    dot.setAttribute('aria-hidden', 'true');
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = b.user;
    const status = document.createElement('span');
    status.className = 'status';
    status.dataset.testid = 'buddy-status';
    let text = STATE_WORDS[b.state] || b.state;
    if (b.note) text += ` · ${b.note}`;
    if (b.state === 'offline' && b.last_seen) {
      text = lastSeenText(b.last_seen);
      status.dataset.lastSeen = b.last_seen;
      status.title = b.last_seen;
    }
    status.textContent = text;
    btn.append(dot, name, status);
    btn.addEventListener('click', () => {
      openConversation(conversationFor(null, normalisePeer(b.uri)));
      $('compose-input').focus();
    });
    li.append(btn);
    return li;
  }));
}

function applyChatEvent(conv, data) {
  conv.state = data.status === 'accepted' ? 'active' : 'closed';
  conv.reason = data.status === 'accepted' ? '' : `${data.status}${data.reason ? `: ${data.reason}` : ''}`;
  if (conv === current) renderHeader();
  renderConversations();
}

// ---------- rendering ----------

function setConnection(state) {
  const el = document.querySelector('[data-testid="connection"]');
  el.dataset.state = state;
  el.textContent = { open: 'online', connecting: 'connecting…', closed: 'offline' }[state];
}

function openConversation(conv) {
  if (composing && composing !== conv) setComposing(false);
  showGroupPane(false);
  current = conv;
  session.open = conv.peer;
  save();
  renderHeader();
  $('messages').replaceChildren(...conv.messages.map((m) => m.el));
  scrollDown();
  renderTyping();
  $('compose-input').disabled = false;
  document.querySelector('[data-testid="send"]').disabled = false;
  renderConversations();
  markDisplayed(conv);
}

function renderHeader() {
  $('peer-name').textContent = current ? `Chat with ${current.peer}` : 'No conversation open';
  $('chat-state').textContent = current && current.reason ? `Chat ${current.reason}` : '';
}

function renderConversations() {
  const list = $('conversations');
  list.replaceChildren(...conversations.map((conv) => {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.testid = `conversation-${conv.peer}`;
    b.dataset.state = conv.state;
    if (conv === current) b.setAttribute('aria-current', 'true');
    const unread = conv.messages.filter((m) => m.direction === 'in' && m.status !== 'displayed').length;
    b.textContent = conv.peer;
    if (unread && conv !== current) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = unread;
      badge.setAttribute('aria-label', `${unread} unread`);
      b.append(' ', badge);
    }
    b.addEventListener('click', () => openConversation(conv));
    li.append(b);
    return li;
  }));
}

function renderMessage(msg) {
  const li = document.createElement('li');
  li.className = `msg ${msg.direction}`;
  li.dataset.testid = 'message';
  li.dataset.direction = msg.direction;
  const text = document.createElement('span');
  text.className = 'text';
  text.dataset.testid = 'message-text';
  text.textContent = msg.text;
  if (msg.file) renderFile(msg, text); // files.js
  const meta = document.createElement('span');
  meta.className = 'meta';
  const time = document.createElement('time');
  time.dateTime = msg.datetime || '';
  time.textContent = msg.datetime ? new Date(msg.datetime).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';
  meta.append(time);
  if (msg.direction === 'in') {
    const who = document.createElement('span');
    who.className = 'sender';
    who.textContent = msg.sender;
    li.append(who);
  } else {
    const tick = document.createElement('span');
    tick.className = 'tick';
    tick.dataset.testid = 'message-status';
    meta.append(' ', tick);
  }
  li.append(text, meta);
  msg.el = li;
  updateStatus(msg);
  return li;
}

function updateStatus(msg) {
  if (!msg.el) return;
  msg.el.dataset.status = msg.status;
  if (msg.message_id) msg.el.dataset.messageId = msg.message_id;
  const tick = msg.el.querySelector('.tick');
  if (tick) {
    tick.textContent = TICK[msg.status] || '';
    tick.title = msg.status;
    tick.setAttribute('aria-label', msg.status);
  }
}

function renderTyping() {
  const el = $('typing');
  const who = current && current.typing;
  el.hidden = !who;
  el.textContent = who ? `${who} is typing…` : '';
}

function scrollDown() {
  const list = $('messages');
  list.scrollTop = list.scrollHeight;
}

// ---------- group chats ----------

const groups = new Map();      // group_id -> { id, subject, state, members: Map user -> p, messages: [], byId: Map }
let currentGroup = null;       // the group shown in the group pane
const earlyGroupStatus = new Map(); // message_id -> reports that came before our POST returned
const MEMBER_WORDS = { connected: 'in the chat', pending: 'invited', alerting: 'invited', 'dialing-out': 'invited',
  disconnected: 'away', departed: 'left', booted: 'removed', deleted: 'left' };

function groupFor(id, info = {}) {
  let g = groups.get(id);
  if (!g) {
    g = { id, subject: '', state: 'joining', members: new Map(), messages: [], byId: new Map(), reason: '', news: 0 };
    groups.set(id, g);
  }
  if (info.subject) g.subject = info.subject;
  if (info.state) g.state = info.state;
  if (Array.isArray(info.participants)) {
    g.members = new Map(info.participants.map((p) => [p.user, p]));
  }
  return g;
}

// An answer (a GET's or the creating POST's) that events overtook: what the events said
// about a member is newer and stays; members no event named yet are taken from the answer.
function keepNewer(g, info) {
  for (const p of info.participants || []) if (!g.members.has(p.user)) g.members.set(p.user, p);
  delete info.participants;
  delete info.state;
}

async function fetchGroups() {
  for (const info of await api('GET', '/Group')) {
    const g = groupFor(info.group_id, info);
    for (const m of await api('GET', `/Group/${encodeURIComponent(g.id)}/Messages`)) addGroupMessage(g, m);
  }
  renderGroups();
  if (currentGroup) renderGroup();
}

// One group's resource again (subject, state, members), after an event about a group we did not know.
// Events that came while the GET was on its way are newer than its answer: its members list
// and state are then left out.
async function refreshGroup(id) {
  const news = groups.get(id)?.news ?? 0;
  const info = await api('GET', `/Group/${encodeURIComponent(id)}`);
  const g = groups.get(id);
  if (g && g.news !== news) { keepNewer(g, info); }
  groupFor(id, info);
  renderGroups();
  if (currentGroup && currentGroup.id === id) renderGroup();
}

function addGroupMessage(g, m) {
  if (m.message_id && g.byId.has(m.message_id)) {
    const old = g.byId.get(m.message_id);
    for (const r of m.read_by || []) old.readBy.add(r);
    if (m.status) old.status = m.status;
    updateGroupMessage(old);
    return old;
  }
  const msg = {
    message_id: m.message_id, direction: m.direction, sender: m.sender, text: m.text,
    datetime: m.datetime, status: m.status, readBy: new Set(m.read_by || []),
    displayedSent: m.direction === 'in' && m.status === 'displayed',
    file: m.file, progress: m.progress,
  };
  msg.el = renderGroupMessage(msg);
  if (msg.message_id) g.byId.set(msg.message_id, msg);
  g.messages.push(msg);
  if (g === currentGroup) {
    $('group-messages').append(msg.el);
    $('group-messages').scrollTop = $('group-messages').scrollHeight;
  }
  return msg;
}

function onGroupEvent(type, data) {
  const g = groupFor(data.group_id);
  g.news += 1;
  switch (type) {
    case 'groupChatEventNotification':
      if (data.subject) g.subject = data.subject;
      g.state = { created: 'active', joined: 'active', invited: 'joining', idle: 'idle' }[data.status] || 'closed';
      g.reason = g.state === 'closed' ? `${data.status}${data.reason ? `: ${data.reason}` : ''}` : '';
      refreshGroup(g.id).catch(report);
      break;
    case 'chatMessageNotification':
      addGroupMessage(g, { ...data, direction: 'in', status: 'received' });
      if (!currentGroup && !current) openGroup(g);
      markGroupDisplayed(g);
      break;
    case 'messageStatusNotification': {
      const msg = g.byId.get(data.message_id);
      if (msg) applyGroupStatus(msg, data);
      else earlyGroupStatus.set(data.message_id, [...(earlyGroupStatus.get(data.message_id) || []), data]);
      break;
    }
    case 'participantStatusNotification':
      if (data.status === 'deleted') g.members.delete(data.participant);
      else g.members.set(data.participant, { ...data, user: data.participant });
      if (g === currentGroup) renderMembers();
      break;
  }
  renderGroups();
}

function applyGroupStatus(msg, data) {
  if (data.status === 'displayed') msg.readBy.add(data.sender);
  if ((RANK[data.status] ?? -1) > (RANK[msg.status] ?? -1)) msg.status = data.status;
  updateGroupMessage(msg);
}

// Members' messages on screen in the open group of a visible page: "displayed" to their writers.
function markGroupDisplayed(g) {
  if (g !== currentGroup || document.hidden || $('group-pane').hidden) return;
  for (const msg of g.messages) {
    if (msg.direction !== 'in' || msg.displayedSent || !msg.message_id) continue;
    msg.displayedSent = true;
    api('PUT', `/Group/${encodeURIComponent(g.id)}/Messages/${encodeURIComponent(msg.message_id)}/Status`, { status: 'displayed' })
      .then(() => { msg.status = 'displayed'; updateGroupMessage(msg); renderGroups(); })
      .catch((e) => { msg.displayedSent = false; report(e); });
  }
}

async function createGroup(subject, members) {
  const participants = members.split(/[,\s]+/).map((m) => normalisePeer(m)).filter(Boolean);
  const r = await api('POST', '/Group', { subject, participants });
  const known = groups.get(r.group_id);
  if (known && known.news > 0) keepNewer(known, r);
  const g = groupFor(r.group_id, r);
  renderGroups();
  openGroup(g);
}

async function sendGroup(g, text) {
  const msg = addGroupMessage(g, { direction: 'out', sender: session.user, text, status: 'sending',
    datetime: new Date().toISOString() });
  try {
    const r = await api('POST', `/Group/${encodeURIComponent(g.id)}/Messages`, { text });
    msg.message_id = r.message_id;
    g.byId.set(r.message_id, msg);
    if ((RANK[msg.status] ?? -1) < RANK.sent) msg.status = 'sent';
    for (const d of earlyGroupStatus.get(r.message_id) || []) applyGroupStatus(msg, d);
    earlyGroupStatus.delete(r.message_id);
  } catch (e) {
    msg.status = 'failed';
    report(e);
  }
  updateGroupMessage(msg);
}

function showGroupPane(on) {
  $('group-pane').hidden = !on;
  document.querySelector('section.pane:not(.group-pane)').hidden = on;
  if (!on) { currentGroup = null; renderGroups(); }
}

function openGroup(g) {
  if (composing) setComposing(false);
  current = null;
  renderConversations();
  showGroupPane(true);
  currentGroup = g;
  renderGroup();
  renderGroups();
  markGroupDisplayed(g);
}

function renderGroup() {
  const g = currentGroup;
  if (!g) return;
  $('group-name').textContent = g.subject || g.id;
  $('group-name').dataset.groupId = g.id;
  $('group-state').textContent = g.state === 'closed' ? `You are not in this chat (${g.reason || 'left'})`
    : g.state === 'joining' ? 'Joining…'
    : g.state === 'idle' ? 'Quiet for a while: your next message brings everyone back' : '';
  $('group-messages').replaceChildren(...g.messages.map((m) => m.el));
  $('group-messages').scrollTop = $('group-messages').scrollHeight;
  renderMembers();
}

function renderMembers() {
  const g = currentGroup;
  const sorted = [...g.members.values()].sort((a, b) => a.user.localeCompare(b.user));
  $('group-members').replaceChildren(...sorted.map((p) => {
    const li = document.createElement('li');
    li.className = 'member';
    li.dataset.testid = `member-${p.user}`;
    const status = p.departure || p.status;
    li.dataset.status = status;
    const dot = document.createElement('span');
    dot.className = 'dot';
    dot.setAttribute('aria-hidden', 'true');
    const name = document.createElement('span');
    name.textContent = p.user + (p.role === 'chairman' ? ' (admin)' : '');
    const st = document.createElement('span');
    st.className = 'status';
    st.textContent = MEMBER_WORDS[status] || status;
    li.append(dot, name, st);
    if (p.user !== session.user) {
      const rm = document.createElement('button');
      rm.type = 'button';
      rm.className = 'remove';
      rm.dataset.testid = `remove-member-${p.user}`;
      rm.title = `Remove ${p.user}`;
      rm.setAttribute('aria-label', `Remove ${p.user}`);
      rm.textContent = '×';
      rm.addEventListener('click', () => {
        api('DELETE', `/Group/${encodeURIComponent(g.id)}/Participants/${encodeURIComponent(p.user)}`).catch(report);
      });
      li.append(rm);
    }
    return li;
  }));
}

function renderGroups() {
  const sorted = [...groups.values()];
  $('groups').replaceChildren(...sorted.map((g) => {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.testid = 'group';
    b.dataset.groupId = g.id;
    b.dataset.state = g.state;
    if (g === currentGroup) b.setAttribute('aria-current', 'true');
    b.textContent = g.subject || g.id;
    const unread = g.messages.filter((m) => m.direction === 'in' && m.status !== 'displayed').length;
    if (unread && g !== currentGroup) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = unread;
      badge.setAttribute('aria-label', `${unread} unread`);
      b.append(' ', badge);
    }
    b.addEventListener('click', () => openGroup(g));
    li.append(b);
    return li;
  }));
}

function renderGroupMessage(msg) {
  const li = document.createElement('li');
  li.className = `msg ${msg.direction}`;
  li.dataset.testid = 'group-message';
  li.dataset.direction = msg.direction;
  li.dataset.sender = msg.sender;
  const who = document.createElement('span');
  who.className = 'sender';
  who.dataset.testid = 'group-message-sender';
  who.textContent = msg.direction === 'in' ? msg.sender : 'you';
  const text = document.createElement('span');
  text.className = 'text';
  text.dataset.testid = 'group-message-text';
  text.textContent = msg.text;
  if (msg.file) renderFile(msg, text); // files.js
  const meta = document.createElement('span');
  meta.className = 'meta';
  const time = document.createElement('time');
  time.dateTime = msg.datetime || '';
  time.textContent = msg.datetime ? new Date(msg.datetime).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';
  meta.append(time);
  li.append(who, text, meta);
  if (msg.direction === 'out') {
    const read = document.createElement('span');
    read.className = 'read-by';
    read.dataset.testid = 'read-by';
    li.append(read);
  }
  msg.el = li;
  updateGroupMessage(msg);
  return li;
}

function updateGroupMessage(msg) {
  if (!msg.el) return;
  msg.el.dataset.status = msg.status;
  if (msg.message_id) msg.el.dataset.messageId = msg.message_id;
  const read = msg.el.querySelector('.read-by');
  if (read) {
    const names = [...msg.readBy].sort();
    read.dataset.readBy = names.join(',');
    read.textContent = names.length ? `Read by ${names.join(', ')}` : (TICK[msg.status] || '');
  }
}

function wireGroups() {
  $('new-group-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const button = e.target.querySelector('button');
    button.disabled = true;
    createGroup($('new-group-subject').value.trim(), $('new-group-members').value)
      .then(() => { $('new-group-subject').value = ''; $('new-group-members').value = ''; })
      .catch(report)
      .finally(() => { button.disabled = false; });
  });
  $('group-compose-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $('group-compose-input');
    const text = input.value.trim();
    if (!text || !currentGroup) return;
    input.value = '';
    sendGroup(currentGroup, text);
  });
  $('add-member-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const who = normalisePeer($('add-member').value);
    if (!who || !currentGroup) return;
    api('POST', `/Group/${encodeURIComponent(currentGroup.id)}/Participants`, { participants: [who] })
      .then(() => { $('add-member').value = ''; })
      .catch(report);
  });
  $('group-leave').addEventListener('click', () => {
    const g = currentGroup;
    if (!g) return;
    api('DELETE', `/Group/${encodeURIComponent(g.id)}`)
      .then(() => { g.state = 'closed'; g.reason = 'left'; renderGroup(); renderGroups(); })
      .catch(report);
  });
}

// ---------- wiring ----------

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const button = e.target.querySelector('button');
    button.disabled = true;
    $('error').hidden = true;
    login($('login-user').value, $('login-password').value)
      .catch(report)
      .finally(() => { button.disabled = false; $('login-password').value = ''; });
  });
  $('logout').addEventListener('click', () => {
    const s = session;
    logout();
    if (s) fetch(`/webrsf/v1/${encodeURIComponent(s.user)}/Session`, { method: 'DELETE', headers: { Authorization: `Bearer ${s.token}` } }).catch(() => {});
  });
  $('new-chat-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const peer = normalisePeer($('new-chat-peer').value);
    if (!peer) return;
    $('new-chat-peer').value = '';
    openConversation(conversationFor(null, peer));
    $('compose-input').focus();
  });
  $('compose-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $('compose-input');
    const text = input.value.trim();
    if (!text || !current) return;
    input.value = '';
    send(current, text);
  });
  $('compose-input').addEventListener('input', onInput);
  document.addEventListener('visibilitychange', () => {
    if (current) markDisplayed(current);
    if (currentGroup) markGroupDisplayed(currentGroup);
  });
  wireGroups();

  session = load();
  if (session && session.token) start().catch(report);
  else $('login-user').focus();
});
