#!/usr/bin/env node
// nodemailer's smtp-server as a loopback peer for volley's integration tests.
//
//   node server.js --dir DIR --cert C --key K --password-file F
//                  [--user alice@volley.test] [--port 0] [--lifetime 900]
//
// Listens on 127.0.0.1 only (port 0 = any free port) and writes "PORT PID" to
// DIR/port. Offers PIPELINING, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, DSN,
// SIZE, STARTTLS and AUTH PLAIN, LOGIN, CRAM-MD5, XOAUTH2 (refused before TLS).
//
// Replies by local part (like tests/peers/aio_server.py):
//   MAIL FROM badsender* -> 553;  RCPT TO temp* -> 451, bad* -> 550; else 250.
//   A header "X-Test-Reject: yes" -> 554 after DATA.
// Writes:
//   DIR/messages/msg-NNNNNN.json  every accepted message with its envelope
//   DIR/sessions.jsonl            per connection: commands seen, the chunks they
//                                 arrived in, how many chunks held more than one
//                                 command (pipelined_chunks), TLS, AUTH
//   DIR/auth.log                  one line per AUTH attempt
'use strict';

const fs = require('fs');
const path = require('path');
const { SMTPServer } = require('smtp-server');
const { SMTPStream } = require('smtp-server/lib/smtp-stream.js');
const { SMTPConnection } = require('smtp-server/lib/smtp-connection.js');

function parseArgs(argv) {
  const a = { port: 0, user: 'alice@volley.test', lifetime: 900 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => argv[++i];
    if (k === '--dir') a.dir = v();
    else if (k === '--cert') a.cert = v();
    else if (k === '--key') a.key = v();
    else if (k === '--password-file') a.passwordFile = v();
    else if (k === '--user') a.user = v();
    else if (k === '--port') a.port = Number(v());
    else if (k === '--lifetime') a.lifetime = Number(v());
    else { console.error('unknown argument ' + k); process.exit(1); }
  }
  if (!a.dir || !a.cert || !a.key) {
    console.error('usage: server.js --dir DIR --cert C --key K [--password-file F]');
    process.exit(1);
  }
  return a;
}

const args = parseArgs(process.argv.slice(2));
const password = args.passwordFile
  ? fs.readFileSync(args.passwordFile, 'utf8').split('\n')[0].replace(/\r$/, '')
  : null;
fs.mkdirSync(path.join(args.dir, 'messages'), { recursive: true });

function writeAtomic(file, text) {
  fs.writeFileSync(file + '.tmp', text);
  fs.renameSync(file + '.tmp', file);
}
function append(file, line) {
  fs.appendFileSync(file, line + '\n');
}
function localPart(addr) {
  return String(addr || '').split('@')[0].toLowerCase();
}
function smtpError(code, text) {
  const e = new Error(text);
  e.responseCode = code;
  return e;
}

// --- pipelining detection -------------------------------------------------
// Every network chunk reaches the command parser through Writable.write (the
// socket, or the TLS socket after STARTTLS, is piped into it). Count the
// command lines each chunk holds: more than one means the client sent a
// command before it had the reply to the previous one.
const COMMAND_RE = /^(EHLO|HELO|LHLO|MAIL FROM:|RCPT TO:|DATA$|BDAT |RSET$|QUIT$|NOOP|STARTTLS$|AUTH |VRFY )/i;
let sessionCounter = 0;

const origCreateParser = SMTPConnection.prototype._createParser;
SMTPConnection.prototype._createParser = function () {
  const parser = origCreateParser.apply(this, arguments);
  if (!this._volleyRec) {
    this._volleyRec = {
      session: ++sessionCounter, chunks: [], pipelined_chunks: 0,
      max_commands_per_chunk: 0, tls: false, auth: null, start: Date.now() / 1000,
    };
  }
  parser._volleyRec = this._volleyRec;
  return parser;
};

const origWrite = SMTPStream.prototype.write;
SMTPStream.prototype.write = function (chunk) {
  const rec = this._volleyRec;
  if (rec && chunk && chunk.length) {
    const text = Buffer.isBuffer(chunk) ? chunk.toString('latin1') : String(chunk);
    const lines = text.split(/\r?\n/);
    let n = 0;
    const verbs = [];
    for (const line of lines) {
      if (COMMAND_RE.test(line)) {
        n++;
        verbs.push(line.replace(/^(AUTH \S+).*/i, '$1').slice(0, 80));
      }
    }
    if (n > 0) {
      rec.chunks.push(verbs);
      if (n > 1) rec.pipelined_chunks++;
      if (n > rec.max_commands_per_chunk) rec.max_commands_per_chunk = n;
    }
  }
  return origWrite.apply(this, arguments);
};

const origOnClose = SMTPConnection.prototype._onClose;
SMTPConnection.prototype._onClose = function () {
  const rec = this._volleyRec;
  if (rec && !rec.closed) {
    rec.closed = true;
    rec.end = Date.now() / 1000;
    rec.tls = !!(this.session && this.session.secure);
    try { append(path.join(args.dir, 'sessions.jsonl'), JSON.stringify(rec)); } catch (e) { /* dir gone */ }
  }
  return origOnClose.apply(this, arguments);
};

// --- the server -------------------------------------------------------------
let messageCounter = 0;

const server = new SMTPServer({
  name: 'nodemailer.volley.test',
  banner: 'volley test peer',
  key: fs.readFileSync(args.key),
  cert: fs.readFileSync(args.cert),
  authMethods: ['PLAIN', 'LOGIN', 'CRAM-MD5', 'XOAUTH2'],
  authOptional: true,
  allowInsecureAuth: false,
  disableReverseLookup: true,
  hideENHANCEDSTATUSCODES: false,
  hideDSN: false,
  size: 10 * 1024 * 1024,
  socketTimeout: 60 * 1000,
  closeTimeout: 5 * 1000,
  logger: false,

  onAuth(auth, session, callback) {
    let ok = false;
    if (auth.username === args.user && password !== null) {
      if (auth.method === 'CRAM-MD5') ok = auth.validatePassword(password);
      else if (auth.method === 'XOAUTH2') ok = auth.accessToken === password;
      else ok = auth.password === password;
    }
    append(path.join(args.dir, 'auth.log'),
      `${auth.method} ${auth.username} ${ok ? 'ok' : 'fail'} tls=${!!session.secure}`);
    const conn = [...(server.connections || [])].find(c => c.session === session);
    if (conn && conn._volleyRec) conn._volleyRec.auth = { mech: auth.method, user: auth.username, ok };
    if (!ok) {
      if (auth.method === 'XOAUTH2') {
        return callback(null, { data: { status: '401', schemes: 'bearer', scope: 'mail' } });
      }
      return callback(smtpError(535, 'Authentication credentials invalid'));
    }
    return callback(null, { user: auth.username });
  },

  onMailFrom(address, session, callback) {
    if (localPart(address.address).startsWith('badsender')) {
      return callback(smtpError(553, 'Sender refused'));
    }
    return callback();
  },

  onRcptTo(address, session, callback) {
    const lp = localPart(address.address);
    if (lp.startsWith('temp')) return callback(smtpError(451, 'Try again later'));
    if (lp.startsWith('bad')) return callback(smtpError(550, 'User unknown'));
    return callback();
  },

  onData(stream, session, callback) {
    const parts = [];
    stream.on('data', c => parts.push(c));
    stream.on('end', () => {
      const data = Buffer.concat(parts);
      if (stream.sizeExceeded) return callback(smtpError(552, 'Message too big'));
      const text = data.toString('utf8');
      const head = text.split(/\r?\n\r?\n/)[0];
      if (/^x-test-reject:\s*yes\s*$/im.test(head)) {
        return callback(smtpError(554, 'Content refused'));
      }
      const id = 'msg-' + String(++messageCounter).padStart(6, '0');
      const conn = [...(server.connections || [])].find(c => c.session === session);
      const rec = {
        id,
        mail_from: session.envelope.mailFrom ? session.envelope.mailFrom.address : null,
        mail_options: session.envelope.mailFrom ? session.envelope.mailFrom.args : null,
        rcpt_to: session.envelope.rcptTo.map(r => r.address),
        data: text,
        size: data.length,
        tls: !!session.secure,
        auth_user: session.user || null,
        session: conn && conn._volleyRec ? conn._volleyRec.session : null,
        time: Date.now() / 1000,
      };
      writeAtomic(path.join(args.dir, 'messages', id + '.json'), JSON.stringify(rec, null, 1));
      return callback(null, 'Queued as ' + id);
    });
  },
});

server.on('error', err => console.error('smtp-server error:', err.message));

server.listen(args.port, '127.0.0.1', () => {
  const port = server.server.address().port;
  writeAtomic(path.join(args.dir, 'port'), `${port} ${process.pid}\n`);
  console.log(`smtp-server listening on 127.0.0.1:${port} pid ${process.pid}`);
});

function shutdown() {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
setTimeout(() => { console.log('lifetime over, exiting'); shutdown(); }, args.lifetime * 1000).unref();
// keep the process alive for its lifetime even when idle
const keepAlive = setInterval(() => {}, 1 << 30);
setTimeout(() => clearInterval(keepAlive), args.lifetime * 1000 + 3000).unref();
