// SPDX-License-Identifier: MIT
// Express: hand out signed download links from a route, and a middleware
// that gives every handler res.locals.signedUrl(). An example only: the
// package itself has no dependency on Express.
//
//   npm install express securelink
//   SECURELINK_SOCKET=/run/securelink/securelinkd.sock node examples/express.mjs
import express from 'express';
import { Client, SecurelinkError } from 'securelink';

const securelink = new Client({ timeout: 2000 }); // one kept connection per process

// res.locals.signedUrl(path, { ttl }) in every handler and template.
function signedLinks(req, res, next) {
  res.locals.signedUrl = (path, opts) => securelink.sign(path, opts);
  next();
}

const app = express();
app.use(signedLinks);

// GET /download/report%202024.pdf -> 302 to /media/private/report%202024.pdf?token=...
app.get('/download/:name', async (req, res, next) => {
  try {
    const url = await res.locals.signedUrl(`/media/private/${encodeURIComponent(req.params.name)}`, { ttl: 300 });
    res.redirect(302, url);
  } catch (e) {
    if (e instanceof SecurelinkError && e.code === 'bad-target') return res.status(404).end();
    next(e); // unreachable, timeout, unavailable: a 500, and the cause in the log
  }
});

// A listing signs all its links in one pipelined round trip.
app.get('/files', async (req, res, next) => {
  try {
    const names = ['a.pdf', 'b.pdf', 'c d.pdf'];
    const urls = await securelink.signMany(names.map((n) => `/media/private/${n}`), { ttl: 600 });
    res.send(names.map((n, i) => `<a href="${urls[i]}">${n}</a>`).join('<br>\n'));
  } catch (e) {
    next(e);
  }
});

app.listen(3000);
