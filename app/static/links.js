// The link's query with the link fields (the last values handed in), written by the page, checked and encoded as
// app.urlstate.read_query and write_query do (a default left out), so a change asks the server for the figure at
// most, never for the link. A value the app would refuse (an empty box included) leaves the link as it was.
//
// A function expression, not a script: app.urlstate.link_writer_js reads this file and hands it to Gradio inside
// each link control's js= hook, with the fields' spec from Python: [key, default, rule] per field, the rule being
// the one its parser checks (app.urlstate.choice, multi_choice, number, flag).
(spec, query, values) => {
  const search = new URLSearchParams(query || "");
  for (let i = 0; i < spec.length; i++) {
    const [key, fallback, rule] = spec[i];
    let value = values[values.length - spec.length + i], text;
    if (rule.kind === "number") {
      if (value === null || value === undefined || value === "") return query;
      value = Number(value);
      if (!Number.isFinite(value) || value > rule.high || (rule.exclusive_low ? value <= rule.low : value < rule.low)
          || (rule.integer && !Number.isInteger(value))) return query;
      text = String(value);
    } else if (rule.kind === "flag") {
      value = Boolean(value); text = rule.text[Number(value)];
    } else if (rule.kind === "choice") {
      if (!rule.allowed.includes(value)) return query;
      text = value;
    } else {  // a list
      value = value || [];
      if (!value.every((item) => rule.allowed.includes(item))) return query;
      text = value.join(rule.separator);
    }
    if (JSON.stringify(value) === JSON.stringify(fallback)) search.delete(key);
    else search.set(key, text);
  }
  let written = search.toString();
  for (const [, , rule] of spec) {  // a list's separator is written as it is, as write_query does
    if (rule.separator) written = written.split(encodeURIComponent(rule.separator)).join(rule.separator);
  }
  return written;
}
