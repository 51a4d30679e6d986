// A tiny Node upstream for trying switchboard: node examples/upstream.js
// GET /            -> "hello from node"
// GET /slow?ms=N   -> answers after N ms (hang up meanwhile and watch the log)
// GET /events      -> server-sent events, one a second, 10 in all
const http = require('http');
const port = Number(process.env.PORT || 3000);
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  req.on('close', () => {
    if (!res.writableFinished) console.log(`${req.method} ${req.url}: the caller went away; stopping work`);
  });
  if (url.pathname === '/slow') {
    const t = setTimeout(() => res.end('slow answer\n'), Number(url.searchParams.get('ms') || 3000));
    res.on('close', () => clearTimeout(t));
    return;
  }
  if (url.pathname === '/events') {
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    let i = 0;
    const t = setInterval(() => {
      res.write(`data: event ${i}\n\n`);
      if (++i === 10) { clearInterval(t); res.end(); }
    }, 1000);
    res.on('close', () => clearInterval(t));
    return;
  }
  res.end('hello from node\n');
});
server.listen(port, '127.0.0.1', () => console.log(`example upstream on http://127.0.0.1:${port}`));
