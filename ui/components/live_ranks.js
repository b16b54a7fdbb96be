// A ranked list of the live page (active pages, sources, countries, devices): its rows come as
// one list of values, keyed by name so that a row that stays keeps its element and its bar
// glides to its new width. Text goes through {{ }}: the browser shows it as text.
export default {
  template: `
    <div class="w-full flex flex-col gap-1">
      <div v-for="(row, index) in rows" :key="row.name" class="pulse-rank w-full"
           :data-pulse="marker + '-' + index">
        <div class="pulse-rank-bar" :style="{ width: row.width + '%' }"></div>
        <div class="relative w-full flex flex-row items-center justify-between no-wrap px-2 py-1 gap-3">
          <div class="pulse-cell text-sm text-slate-800" :class="{ 'font-mono': mono }">
            {{ row.name }}</div>
          <div class="text-sm text-slate-600 tabular-nums whitespace-nowrap">{{ row.count }}</div>
        </div>
      </div>
    </div>`,
  props: {
    rows: Array,
    marker: String,
    mono: Boolean,
  },
};
