// The live page's activity feed: the rows come as one list of plain values (one update a
// redraw instead of one per cell), keyed by event id so a row that stays keeps its element
// (and its highlight's fade). Text goes through {{ }}: the browser shows it as text.
export default {
  template: `
    <div>
      <div v-for="(row, index) in rows" :key="row.id" class="pulse-feed-row"
           :class="{ 'pulse-fresh': row.fresh }" :data-pulse="'feed-row-' + index">
        <div class="pulse-cell text-xs text-slate-500 tabular-nums">{{ row.time }}</div>
        <div class="pulse-chip" :class="row.custom ? 'pulse-chip-custom' : 'pulse-chip-pageview'">
          {{ row.kind }}</div>
        <div class="pulse-page pulse-col-page">
          <div class="pulse-cell font-mono text-sm text-slate-900">{{ row.path }}</div>
          <div v-if="row.detail" class="pulse-cell text-xs text-slate-500">{{ row.detail }}</div>
        </div>
        <div class="pulse-cell pulse-col-source text-sm text-slate-700">{{ row.source }}</div>
        <div class="pulse-col-device row items-center gap-1 no-wrap min-w-0">
          <q-icon :name="row.icon" size="16px" class="text-slate-500" aria-hidden="true" />
          <div class="pulse-cell text-sm text-slate-700">{{ row.device }}</div>
        </div>
        <div class="pulse-cell pulse-col-country text-xs font-mono text-slate-600">
          {{ row.country }}</div>
      </div>
    </div>`,
  props: {
    rows: Array,
  },
};
