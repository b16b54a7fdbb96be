/*! Pulse tracker: pageviews (SPA included), outbound links and custom events. MIT. */
(function (w, d) {
  'use strict';
  var script = d.currentScript || d.querySelector('script[data-website-id]');
  if (!script) return;
  var loc = w.location;
  var nav = w.navigator;
  var attr = function (name) { return script.getAttribute('data-' + name); };
  var flag = function (name) { var v = attr(name); return v !== null && v !== 'false'; };
  var site = attr('website-id');
  var endpoint = attr('api') || new URL(script.src, loc.href).origin + '/web/analytics/track';
  var hashMode = flag('hash');
  var debug = flag('debug');
  // Nothing is kept in the browser unless the site opts in (with its visitors' consent) to
  // persistent ids; the server then derives the visitor and the visit itself.
  var persist = attr('persist') === 'local';
  var SESSION_IDLE = 30 * 60 * 1000;
  var log = function (what, detail) {
    if (debug) detail === undefined ? w.console.log('[Pulse] ' + what)
      : w.console.log('[Pulse] ' + what, detail);
  };
  var queued = (w.pulse && w.pulse.q) || [];

  // Why this page view is not tracked, or '' when it is.
  var reason = !site ? 'no data-website-id'
    : !flag('allow-localhost') && (loc.protocol === 'file:' ||
        /^(localhost|127(\.\d+){3}|\[::1\]|0\.0\.0\.0)$/.test(loc.hostname)) ? 'localhost'
    : flag('respect-dnt') && (nav.doNotTrack === '1' || w.doNotTrack === '1' ||
        nav.globalPrivacyControl === true) ? 'Do Not Track / Global Privacy Control'
    : '';
  try {
    if (w.localStorage.getItem('pulse_ignore') === 'true') reason = 'pulse_ignore is set';
  } catch (e) { /* storage blocked */ }

  var randomId = function () {
    var bytes = new Uint8Array(16);
    try { w.crypto.getRandomValues(bytes); } catch (e) {
      for (var i = 0; i < 16; i++) bytes[i] = Math.random() * 256;
    }
    return Array.prototype.map.call(bytes, function (b) { return (b | 256).toString(16).slice(1); })
      .join('');
  };

  // With data-persist="local": the anonymous visitor id (kept in localStorage), or '' when
  // storage is blocked (the server then derives a daily id itself).
  var visitorId = function () {
    if (!persist) return '';
    try {
      var id = w.localStorage.getItem('pulse_vid');
      if (!id) w.localStorage.setItem('pulse_vid', id = randomId());
      return id;
    } catch (e) { return ''; }
  };

  // The session id of this tab (sessionStorage); a new one after 30 minutes without events.
  var sessionId = function () {
    if (!persist) return '';
    try {
      var now = Date.now();
      var saved = (w.sessionStorage.getItem('pulse_sid') || '').split('|');
      var id = saved[0] && now - saved[1] < SESSION_IDLE ? saved[0] : randomId();
      w.sessionStorage.setItem('pulse_sid', id + '|' + now);
      return id;
    } catch (e) { return ''; }
  };

  // The page's path; with data-hash the hash route counts too (/#/about → /about).
  var path = function () {
    var route = hashMode ? loc.hash.replace(/^#!?\/?/, '') : '';
    return route ? loc.pathname.replace(/\/$/, '') + '/' + route : loc.pathname;
  };

  var send = function (type, props) {
    if (reason) return log('ignored ' + type + ': ' + reason);
    var body = JSON.stringify({
      website_id: site,
      event_type: String(type).slice(0, 64),
      pathname: (path() + loc.search).slice(0, 2048),
      visitor_id: visitorId() || undefined,
      session_id: sessionId() || undefined,
      referrer: d.referrer.slice(0, 2048),
      hostname: loc.hostname,
      title: d.title.slice(0, 500),
      screen_width: w.screen && w.screen.width || undefined,
      props: props || {}
    });
    log(type, body);
    if (w.fetch) {
      return w.fetch(endpoint, { method: 'POST', body: body, keepalive: true, credentials: 'omit' })
        .then(function (r) { if (!r.ok) log('rejected ' + type + ': HTTP ' + r.status); },
              function (e) { log('not sent: ' + e); });
    } else if (nav.sendBeacon) {
      nav.sendBeacon(endpoint, body);
    }
  };

  var lastPath;
  var pageview = function () {
    var current = path();
    if (current === lastPath) return;  // replaceState and friends without a new page
    lastPath = current;
    return send('pageview');
  };

  // SPA navigation: history API calls, back/forward, and hash routes when asked.
  var wrap = function (name) {
    var original = w.history[name];
    if (!original) return;
    w.history[name] = function () {
      var result = original.apply(this, arguments);
      pageview();
      return result;
    };
  };
  wrap('pushState');
  wrap('replaceState');
  w.addEventListener('popstate', pageview);
  if (hashMode) w.addEventListener('hashchange', pageview);

  // Outbound links: a click (or middle click) on a link to another host.
  var onClick = function (event) {
    var link = event.target && event.target.closest && event.target.closest('a[href]');
    if (link && /^https?:$/.test(link.protocol) && link.host !== loc.host &&
        (event.type === 'click' || event.button === 1)) {
      send('outbound', { url: link.href.slice(0, 500) });
    }
  };
  d.addEventListener('click', onClick, true);
  d.addEventListener('auxclick', onClick, true);

  // data-errors: uncaught errors as js_error events (message, file without query, line,
  // column; nothing else), each distinct one once per page view, at most 10 per page view.
  if (flag('errors')) {
    var errPage, errSeen;
    w.addEventListener('error', function (e) {
      if (e.message === undefined) return;
      if (path() !== errPage) { errPage = path(); errSeen = []; }
      var p = { message: String(e.message).slice(0, 300),
        file: String(e.filename || '').split(/[?#]/)[0].slice(0, 300),
        line: e.lineno | 0, column: e.colno | 0 };
      var key = p.message + p.file + p.line + ':' + p.column;
      if (errSeen.length < 10 && errSeen.indexOf(key) < 0) errSeen.push(key) && send('js_error', p);
    });
  }
  log('initialized', { website_id: site, endpoint: endpoint, tracking: reason || 'on' });
  // window.pulse('signup', {props: {plan: 'pro'}}), also for calls queued before this loaded:
  // they go out once the first pageview has been answered, so it is always the visit's first.
  var ready = w.Promise && w.Promise.resolve(pageview());
  w.pulse = function (name, options) {
    var go = function () { send(name, options && options.props); };
    ready ? ready.then(go, go) : go();
  };
  for (var i = 0; i < queued.length; i++) w.pulse.apply(w, queued[i]);
})(window, document);
