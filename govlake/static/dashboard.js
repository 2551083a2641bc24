// Charts of the CDO dashboard, drawn with the vendored ECharts.
//
// A static file, not inline script: the Content-Security-Policy allows scripts from the dashboard itself only
// (script-src 'self'), so an injected <script> could never run. The data comes from the page as JSON in
// <script type="application/json" id="chart-data"> (written with Jinja's |tojson, which escapes < > & ').
// Tooltips are drawn on the canvas (renderMode 'richText'): ECharts' HTML tooltips use inline styles, which the
// policy (style-src 'self') refuses.
(function () {
  'use strict';

  function byId(id) { return document.getElementById(id); }

  function note(el, text) {
    const p = document.createElement('p');
    p.className = 'muted';
    p.textContent = text;
    el.replaceChildren(p);
  }

  // Overview: quality ranking as horizontal bars, best at the top.
  function bars(id, rows) {
    const el = byId(id);
    if (!el) return;
    echarts.init(el).setOption({
      grid: {left: 150, right: 20, top: 10, bottom: 20}, tooltip: {renderMode: 'richText'},
      xAxis: {type: 'value', min: 0, max: 100},
      yAxis: {type: 'category', data: rows.map(r => r[0]).reverse()},
      series: [{type: 'bar', data: rows.map(r => r[1]).reverse()}]});
  }

  // Indicators: one trend line per card, with the 2025 target as a dashed line.
  function trends(t) {
    t.ids.forEach((id, k) => {
      const el = byId('trend-' + id);
      const pts = t.series[id] || [];
      if (!el) return;
      if (!pts.length) { note(el, '暂无趋势数据'); return; }
      const s = [{type: 'line', name: '全市', data: pts.map(p => p[1]), smooth: true}];
      if (t.targets[k] !== null) {
        s.push({type: 'line', name: '2025 目标', data: pts.map(() => t.targets[k]), lineStyle: {type: 'dashed'}, symbol: 'none'});
      }
      echarts.init(el).setOption({grid: {left: 50, right: 10, top: 20, bottom: 25},
        tooltip: {trigger: 'axis', renderMode: 'richText'},
        xAxis: {type: 'category', data: pts.map(p => p[0])}, yAxis: {type: 'value'}, series: s});
    });
  }

  // Lineage: the tables around one table as a force-directed graph, coloured by layer.
  function graph(g) {
    const el = byId(g.el);
    if (!el) return;
    const layers = ['bronze', 'silver', 'quarantine', 'gold', 'meta'];
    echarts.init(el).setOption({series: [{type: 'graph', layout: 'force', roam: true,
      force: {repulsion: 260, edgeLength: 90}, edgeSymbol: ['none', 'arrow'], label: {show: true, fontSize: 11},
      categories: layers.map(n => ({name: n})),
      data: g.names.map(n => ({name: n, category: layers.indexOf(n.split('.')[0]), symbolSize: n === g.me ? 26 : 14})),
      links: g.links.map(l => ({source: l[0], target: l[1]}))}]});
  }

  function draw() {
    const holder = byId('chart-data');
    if (!holder || !window.echarts) return;  // pages stay readable without charts
    const data = JSON.parse(holder.textContent);
    Object.entries(data.bars || {}).forEach(([id, rows]) => bars(id, rows));
    if (data.trends) trends(data.trends);
    if (data.graph) graph(data.graph);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', draw);
  else draw();
})();
