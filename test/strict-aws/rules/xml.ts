/** Small readers of moto's XML answers for rules that look up state (no XML library: the shapes are fixed and simple). */

/** Text of every `<tag>…</tag>` (non-nested tags only). */
export function xmlValues(xml: string, tag: string): string[] {
  const re = new RegExp(`<${tag}>([^<]*)</${tag}>`, "g");
  return [...xml.matchAll(re)].map((m) => m[1] ?? "");
}

/** Each `<item>` block (or another element) at any depth, as its inner XML; nested items of the same name are not split. */
export function xmlBlocks(xml: string, tag: string): string[] {
  const blocks: string[] = [];
  const open = `<${tag}>`;
  const close = `</${tag}>`;
  let at = xml.indexOf(open);
  while (at >= 0) {
    let depth = 1;
    let cursor = at + open.length;
    while (depth > 0) {
      const nextOpen = xml.indexOf(open, cursor);
      const nextClose = xml.indexOf(close, cursor);
      if (nextClose < 0) return blocks;
      if (nextOpen >= 0 && nextOpen < nextClose) {
        depth += 1;
        cursor = nextOpen + open.length;
      } else {
        depth -= 1;
        cursor = nextClose + close.length;
      }
    }
    blocks.push(xml.slice(at + open.length, cursor - close.length));
    at = xml.indexOf(open, cursor);
  }
  return blocks;
}

/** Query-protocol list parameters: Subnets.member.1, Subnets.member.2, … in order. */
export function memberList(params: URLSearchParams, prefix: string): string[] {
  const out: string[] = [];
  for (let i = 1; params.has(`${prefix}.member.${i}`); i++) out.push(params.get(`${prefix}.member.${i}`) ?? "");
  return out;
}
