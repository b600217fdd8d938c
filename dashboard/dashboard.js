/*
 * smarty-gateway: the dashboard (see index.html, docs/metrics.md).
 *
 * Every few seconds: /metrics (Prometheus's text format, parsed here),
 * /quota?space=N for the spaces the metrics show, /audit?limit=15.  Rates
 * and percentiles come from the difference of two scrapes.  The page's
 * address may carry "#key=<operator key>&interval=<ms>": the key moves to
 * sessionStorage and leaves the address at once.
 *
 * window.smartyDashboard holds what the page drew, for tests.
 */

'use strict';

(function () {
    var POINTS = 60;
    var state = {
        scrapes: 0,
        failures: 0,
        totals: {},
        charts: {},
        quota: [],
        audit: 0,
        lastError: null
    };
    var key = null;
    var interval = 5000;
    var prev = null;
    var charts = {};
    var timer = null;

    window.smartyDashboard = state;

    /* --- the key ------------------------------------------------------ */

    function readHash() {
        var params = new URLSearchParams(location.hash.replace(/^#/, ''));

        if (params.get('interval')) {
            interval = Math.max(200, parseInt(params.get('interval'), 10)
                                     || interval);
        }

        if (params.get('key')) {
            sessionStorage.setItem('smarty-key', params.get('key'));
            params.delete('key');
            history.replaceState(null, '', location.pathname
                + location.search
                + (params.toString() ? '#' + params.toString() : ''));
        }

        key = sessionStorage.getItem('smarty-key');
    }

    function $(id) {
        return document.getElementById(id);
    }

    function show(id, on) {
        $(id).hidden = !on;
    }

    function problem(text) {
        $('problem').textContent = text;
        show('problem', !!text);
    }

    function get(url) {
        return fetch(url, {
            headers: { 'Authorization': 'Bearer ' + key },
            cache: 'no-store'
        });
    }

    /* --- Prometheus's text format -------------------------------------- */

    function parse(text) {
        var samples = [];
        var line, m, labels, re, l;
        var lines = text.split('\n');

        for (var i = 0; i < lines.length; i++) {
            line = lines[i];

            if (line === '' || line.charAt(0) === '#') {
                continue;
            }

            m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);

            if (!m) {
                continue;
            }

            labels = {};
            re = /(\w+)="((?:[^"\\]|\\.)*)"/g;

            while ((l = re.exec(m[2] || '')) !== null) {
                labels[l[1]] = l[2].replace(/\\n/g, '\n')
                                   .replace(/\\(.)/g, '$1');
            }

            samples.push({ name: m[1], labels: labels,
                           value: parseFloat(m[3]) });
        }

        return samples;
    }

    function sum(samples, name, keep) {
        var s = 0;

        samples.forEach(function (x) {
            if (x.name === name && (!keep || keep(x.labels))) {
                s += x.value;
            }
        });

        return s;
    }

    function has(samples, name) {
        return samples.some(function (x) { return x.name === name; });
    }

    /* the buckets of a histogram, every method's together: le -> count */
    function buckets(samples, name) {
        var b = {};

        samples.forEach(function (x) {
            if (x.name === name + '_bucket') {
                b[x.labels.le] = (b[x.labels.le] || 0) + x.value;
            }
        });

        return b;
    }

    /* a quantile of the observations between two scrapes, in ms, as
     * Prometheus's histogram_quantile() interpolates it */
    function quantile(q, now, before) {
        var les = Object.keys(now).filter(function (le) {
            return le !== '+Inf';
        }).map(parseFloat).sort(function (a, b) { return a - b; });
        var d = function (le) {
            var k = le === Infinity ? '+Inf' : le.toFixed(3);
            return (now[k] || 0) - ((before && before[k]) || 0);
        };
        var total = d(Infinity);
        var rank, lo, c, clo;

        if (total <= 0) {
            return null;
        }

        rank = q * total;
        lo = 0;
        clo = 0;

        for (var i = 0; i < les.length; i++) {
            c = d(les[i]);

            if (c >= rank) {
                return 1000 * (lo + (les[i] - lo)
                                     * (c > clo ? (rank - clo) / (c - clo)
                                                : 1));
            }

            lo = les[i];
            clo = c;
        }

        return 1000 * lo;
    }

    /* --- charts -------------------------------------------------------- */

    function line(id, sets, yOptions) {
        var datasets = sets.map(function (s) {
            return {
                label: s.label, data: [], borderColor: s.color,
                backgroundColor: s.color, type: s.type || 'line',
                yAxisID: s.axis || 'y', pointRadius: 0, borderWidth: 2,
                spanGaps: true
            };
        });
        var scales = { y: Object.assign({ beginAtZero: true }, yOptions) };

        sets.forEach(function (s) {
            if (s.axis && s.axis !== 'y') {
                scales[s.axis] = { beginAtZero: true, position: 'right',
                                   grid: { drawOnChartArea: false },
                                   max: s.max };
            }
        });

        return new Chart($(id), {
            type: 'line',
            data: { labels: [], datasets: datasets },
            options: {
                animation: false, responsive: true,
                maintainAspectRatio: false,
                interaction: { mode: 'index', intersect: false },
                scales: scales
            }
        });
    }

    function makeCharts() {
        charts.requests = line('c-requests', [
            { label: 'requests/s', color: '#1565c0' },
            { label: 'errors/s', color: '#c62828' }
        ]);
        charts.cache = line('c-cache', [
            { label: 'hit ratio %', color: '#2e7d32', axis: 'ratio',
              max: 100 },
            { label: 'images saved/s', color: '#9ccc65', type: 'bar' },
            { label: 'upstream calls/s', color: '#6d4c41' }
        ]);
        charts.latency = line('c-latency', [
            { label: 'p50', color: '#1565c0' },
            { label: 'p90', color: '#f9a825' },
            { label: 'p99', color: '#c62828' },
            { label: 'upstream p50', color: '#8e24aa' }
        ]);
        charts.quota = new Chart($('c-quota'), {
            type: 'bar',
            data: { labels: [], datasets: [
                { label: 'used %', data: [], backgroundColor: '#1565c0' }
            ] },
            options: {
                animation: false, responsive: true,
                maintainAspectRatio: false, indexAxis: 'y',
                scales: { x: { beginAtZero: true, max: 100 } }
            }
        });
    }

    function push(name, label, values) {
        var c = charts[name];

        c.data.labels.push(label);

        values.forEach(function (v, i) {
            c.data.datasets[i].data.push(v);
        });

        if (c.data.labels.length > POINTS) {
            c.data.labels.shift();
            c.data.datasets.forEach(function (d) { d.data.shift(); });
        }

        c.update('none');

        state.charts[name] = {
            labels: c.data.labels.slice(),
            datasets: c.data.datasets.map(function (d) {
                return { label: d.label, data: d.data.slice() };
            })
        };
    }

    /* --- a scrape ------------------------------------------------------ */

    function fmt(n, digits) {
        if (n === null || n === undefined || isNaN(n)) {
            return '–';
        }

        return n.toLocaleString('en', { maximumFractionDigits: digits || 0 });
    }

    function tile(id, value, sub, bad) {
        var v = $('t-' + id);

        v.textContent = value;
        v.parentNode.classList.toggle('bad', !!bad);

        if (sub !== undefined) {
            v.nextElementSibling.textContent = sub;
        }
    }

    function metrics(samples, now) {
        var t = {
            requests: sum(samples, 'smarty_requests_total'),
            errors: sum(samples, 'smarty_requests_total', function (l) {
                return parseInt(l.status, 10) >= 400;
            }),
            hitImages: sum(samples, 'smarty_cache_hit_images_total'),
            upstreamImages: sum(samples, 'smarty_upstream_images_total'),
            upstreamCalls: sum(samples, 'smarty_upstream_requests_total'),
            redisErrors: sum(samples, 'smarty_redis_errors_total'),
            request: buckets(samples, 'smarty_request_duration_seconds'),
            upstream: buckets(samples, 'smarty_upstream_duration_seconds')
        };
        var label = new Date(now).toLocaleTimeString('en-GB');
        var dt, rate, errRate, saved, calls, images, ratio, allImages;

        state.totals = {
            requests: t.requests, errors: t.errors,
            hitImages: t.hitImages, upstreamImages: t.upstreamImages
        };

        allImages = t.hitImages + t.upstreamImages;

        tile('requests', fmt(t.requests));
        tile('errors', fmt(t.errors), undefined, false);
        tile('hit-ratio', allImages ? fmt(100 * t.hitImages / allImages, 1)
                                      + ' %' : '–',
             fmt(t.hitImages) + ' upstream images saved');

        /* rates: since the scrape before */

        if (prev) {
            dt = Math.max(0.001, (now - prev.time) / 1000);
            rate = (t.requests - prev.t.requests) / dt;
            errRate = (t.errors - prev.t.errors) / dt;
            saved = (t.hitImages - prev.t.hitImages) / dt;
            calls = (t.upstreamCalls - prev.t.upstreamCalls) / dt;
            images = (t.hitImages - prev.t.hitImages)
                     + (t.upstreamImages - prev.t.upstreamImages);
            ratio = images > 0
                    ? 100 * (t.hitImages - prev.t.hitImages) / images : null;

            push('requests', label, [rate, errRate]);
            push('cache', label, [ratio, saved, calls]);
            push('latency', label, [
                quantile(0.5, t.request, prev.t.request),
                quantile(0.9, t.request, prev.t.request),
                quantile(0.99, t.request, prev.t.request),
                quantile(0.5, t.upstream, prev.t.upstream)
            ]);

            $('t-rate').textContent = fmt(rate, 1) + ' per second';
            $('t-error-rate').textContent = fmt(errRate, 1) + ' per second';
        }

        health(samples);

        prev = { time: now, t: t };
    }

    function health(samples) {
        var up = sum(samples, 'smarty_redis_workers', function (l) {
            return l.state === 'up';
        });
        var workers = sum(samples, 'smarty_redis_workers');
        var open = sum(samples, 'smarty_redis_workers', function (l) {
            return l.state === 'breaker_open';
        });
        var pending, dropped, age, failing;

        tile('redis', fmt(up) + ' / ' + fmt(workers) + ' up',
             fmt(sum(samples, 'smarty_redis_errors_total')) + ' errors'
             + (open ? ', ' + fmt(open) + ' breakers open' : ''),
             up < workers);

        if (has(samples, 'smarty_audit_records_total')) {
            pending = sum(samples, 'smarty_audit_pending_records');
            dropped = sum(samples, 'smarty_audit_dropped_total');
            tile('audit', fmt(sum(samples, 'smarty_audit_written_total'))
                          + ' written',
                 fmt(pending) + ' pending, ' + fmt(dropped) + ' dropped',
                 dropped > 0);
        } else {
            tile('audit', 'off', 'no smarty_audit_stream');
        }

        if (has(samples, 'smarty_token_fetches_total')) {
            age = Math.max.apply(null, samples.filter(function (x) {
                return x.name === 'smarty_token_age_seconds';
            }).map(function (x) { return x.value; }).concat([0]));
            failing = sum(samples, 'smarty_token_failing');
            tile('token', fmt(age / 60, 1) + ' min old',
                 fmt(sum(samples, 'smarty_token_fetches_total'))
                 + ' fetched, '
                 + fmt(sum(samples, 'smarty_token_fetch_failures_total'))
                 + ' failed' + (failing ? ', failing now' : ''),
                 failing > 0);
        } else {
            tile('token', 'no data', 'a service token from a file');
        }
    }

    /* the quotas of every space the metrics have seen */
    function quotas(samples) {
        var spaces = {};

        samples.forEach(function (x) {
            if (x.name === 'smarty_requests_total' && x.labels.space) {
                spaces[x.labels.space] = true;
            }
        });

        return Promise.all(Object.keys(spaces).sort().map(function (s) {
            return get('../quota?space=' + encodeURIComponent(s))
                .then(function (r) { return r.ok ? r.json() : null; })
                .catch(function () { return null; });
        })).then(function (views) {
            var labels = [], used = [];

            views.forEach(function (v) {
                (v && v.limits || []).forEach(function (l) {
                    labels.push('space ' + v.space
                                + (l.client ? ' · ' + l.client : '')
                                + ' · ' + l.policy);
                    used.push(l.capacity ? 100 * l.used / l.capacity : 0);
                });
            });

            charts.quota.data.labels = labels;
            charts.quota.data.datasets[0].data = used;
            charts.quota.update('none');
            state.quota = labels.map(function (l, i) {
                return { label: l, used: used[i] };
            });
        });
    }

    function audit() {
        return get('../audit?limit=15').then(function (r) {
            if (!r.ok) {
                return r.json().catch(function () { return {}; })
                    .then(function (j) {
                        throw new Error((j.body && j.body.error)
                                        || 'HTTP ' + r.status);
                    });
            }

            return r.json();
        }).then(function (j) {
            var body = $('audit').tBodies[0];

            body.textContent = '';

            j.records.forEach(function (rec) {
                var tr = document.createElement('tr');

                [rec.time.replace('T', ' ').replace('Z', ''), rec.instance,
                 rec.client, rec.method, rec.space, rec.images, rec.cache,
                 rec.quota, rec.status, rec.error, rec.duration_ms
                ].forEach(function (v, i) {
                    var td = document.createElement('td');

                    td.textContent = (v === null || v === undefined)
                                     ? '' : String(v);
                    if (i === 9 && v) {
                        td.className = 'error';
                    }
                    tr.appendChild(td);
                });

                body.appendChild(tr);
            });

            state.audit = j.records.length;
            show('audit-problem', false);
        }).catch(function (e) {
            $('audit-problem').textContent = 'The audit trail cannot be '
                                             + 'read: ' + e.message;
            show('audit-problem', true);
        });
    }

    function scrape() {
        var now = Date.now();

        get('../metrics').then(function (r) {
            if (r.status === 401 || r.status === 403) {
                sessionStorage.removeItem('smarty-key');
                key = null;
                throw new Error('the gateway refused this key: it must be '
                                + 'an operator\'s (HTTP ' + r.status + ')');
            }

            if (!r.ok) {
                throw new Error('/metrics answered HTTP ' + r.status);
            }

            return r.text();
        }).then(function (text) {
            var samples = parse(text);

            problem('');
            metrics(samples, now);
            state.scrapes++;
            $('updated').textContent = 'updated '
                + new Date(now).toLocaleTimeString('en-GB');

            return Promise.all([quotas(samples), audit()]);
        }).catch(function (e) {
            state.failures++;
            state.lastError = e.message;
            problem(e.message);
        }).then(function () {
            if (key) {
                timer = setTimeout(scrape, interval);
            } else {
                start();
            }
        });
    }

    /* --- the page ------------------------------------------------------ */

    function start() {
        if (timer) {
            clearTimeout(timer);
            timer = null;
        }

        if (!key) {
            show('board', false);
            show('forget', false);
            show('login', true);
            $('key').focus();
            return;
        }

        show('login', false);
        show('board', true);
        show('forget', true);

        if (!charts.requests) {
            makeCharts();
        }

        scrape();
    }

    $('login').addEventListener('submit', function (ev) {
        ev.preventDefault();
        key = $('key').value.trim();
        $('key').value = '';

        if (key) {
            sessionStorage.setItem('smarty-key', key);
        }

        start();
    });

    $('forget').addEventListener('click', function () {
        sessionStorage.removeItem('smarty-key');
        key = null;
        start();
    });

    readHash();
    start();
})();
