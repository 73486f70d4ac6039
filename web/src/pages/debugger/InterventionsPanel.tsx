// Active interventions, in the order they apply to every request of the view: ablations (zero,
// mean over the page's prompts, resampled from the second prompt), steering along SAE latents
// (coefficient, hook, positions), patches from the second prompt (hook, positions). Each can be
// edited in place (Enter or leaving a field applies it) or removed; new ones come from row
// actions or the forms below.
import { useEffect, useRef, useState, type KeyboardEvent } from "react";
import { parseNode } from "../../lib/nodes";
import {
  MODES,
  inactiveReason,
  parsePositions,
  showPositions,
  toggleAblation,
  type AblationMode,
  type UiIntervention,
} from "../../lib/interventions";
import { NodeLink } from "./NodeActions";

interface Props {
  items: UiIntervention[];
  prompt2: string;
  residualHooks: string[];
  patchHooks: string[];
  max: number;
  onChange: (items: UiIntervention[]) => void;
}

const MODE_LABEL: Record<AblationMode, string> = {
  zero: "zero",
  mean: "mean (over the page's prompts)",
  resample: "resample (from the second prompt)",
};

/** A text field that applies its value on Enter or when left, and says when it is invalid. */
function CommitInput({
  value,
  onCommit,
  valid,
  ...rest
}: {
  value: string;
  onCommit: (text: string) => void;
  valid: (text: string) => boolean;
  name: string;
  "aria-label": string;
  placeholder?: string;
  size?: number;
  title?: string;
  inputMode?: "numeric" | "decimal";
}) {
  const [draft, setDraft] = useState(value);
  useEffect(() => setDraft(value), [value]);
  const ok = valid(draft);
  const commit = () => {
    if (ok && draft !== value) onCommit(draft);
  };
  const key = (e: KeyboardEvent<HTMLInputElement>) => {
    if (e.key === "Enter") {
      e.preventDefault();
      commit();
    } else if (e.key === "Escape") setDraft(value);
  };
  return <input {...rest} value={draft} aria-invalid={!ok} onChange={(e) => setDraft(e.target.value)} onKeyDown={key} onBlur={commit} />;
}

const validPositions = (t: string) => parsePositions(t) !== undefined;
const validNumber = (t: string) => t.trim() !== "" && Number.isFinite(Number(t));

function Item({ iv, index, prompt2, residualHooks, patchHooks, set }: {
  iv: UiIntervention;
  index: number;
  prompt2: string;
  residualHooks: string[];
  patchHooks: string[];
  set: (iv: UiIntervention) => void;
}) {
  const n = index + 1;
  if (iv.type === "ablate") {
    return (
      <>
        <label className="inline">
          <select name="mode" value={iv.mode} onChange={(e) => set({ ...iv, mode: e.target.value as AblationMode })} aria-label={`ablation mode of intervention ${n}`}>
            {MODES.map((m) => (
              <option key={m} value={m} disabled={m === "resample" && !prompt2}>
                {MODE_LABEL[m]}
              </option>
            ))}
          </select>
        </label>{" "}
        ablate <NodeLink node={iv.node} />
      </>
    );
  }
  const positions = (
    <label className="inline">
      {" "}
      at positions{" "}
      <CommitInput
        name="positions"
        value={showPositions(iv.positions)}
        valid={validPositions}
        onCommit={(t) => set({ ...iv, positions: parsePositions(t) ?? null })}
        aria-label={`positions of intervention ${n}`}
        placeholder="all"
        size={6}
        title="token positions, e.g. 3,4 (empty: every position); Enter applies"
        inputMode="numeric"
      />
    </label>
  );
  if (iv.type === "steer") {
    return (
      <>
        steer along <NodeLink node={iv.latent} /> ×{" "}
        <CommitInput
          name="coefficient"
          value={String(iv.coefficient)}
          valid={validNumber}
          onCommit={(t) => set({ ...iv, coefficient: Number(t) })}
          aria-label={`steering coefficient of intervention ${n}`}
          size={5}
          title="how many times the latent's decoder direction is added (negative: subtracted); Enter applies"
          inputMode="decimal"
        />
        <label className="inline">
          {" "}
          at{" "}
          <select name="hook" value={iv.hook ?? ""} onChange={(e) => set({ ...iv, hook: e.target.value || null })} aria-label={`hook of intervention ${n}`}>
            <option value="">its own hook</option>
            {residualHooks.map((h) => (
              <option key={h} value={h}>
                {h}
              </option>
            ))}
          </select>
        </label>
        {positions}
      </>
    );
  }
  return (
    <>
      patch{" "}
      <select name="hook" value={iv.hook} onChange={(e) => set({ ...iv, hook: e.target.value })} aria-label={`hook of intervention ${n}`}>
        {(patchHooks.includes(iv.hook) ? patchHooks : [iv.hook, ...patchHooks]).map((h) => (
          <option key={h} value={h}>
            {h}
          </option>
        ))}
      </select>{" "}
      from the second prompt{positions}
    </>
  );
}

function AddNode({ items, full, onChange }: { items: UiIntervention[]; full: boolean; onChange: Props["onChange"] }) {
  const [text, setText] = useState("");
  const node = parseNode(text);
  const bad = text.trim() !== "" && node === null;
  const add = (steer: boolean) => {
    if (!node || full) return;
    const id = text.trim();
    if (steer) onChange([...items, { type: "steer", latent: id.replace(/@\d+$/, ""), coefficient: 1, hook: null, positions: node.position === null ? null : [node.position] }]);
    else if (!items.some((iv) => iv.type === "ablate" && iv.node === id)) onChange(toggleAblation(items, id));
    setText("");
  };
  return (
    <span className="add-node" role="group" aria-label="add an intervention on a node">
      <input
        name="iv-node"
        value={text}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter") {
            e.preventDefault();
            add(false);
          }
        }}
        placeholder="node, e.g. L1.H2 or L2.resid_post.F7@5"
        aria-label="node to ablate or steer"
        aria-invalid={bad}
        size={30}
        spellCheck={false}
      />
      <button type="button" onClick={() => add(false)} disabled={!node || full} data-action="add-ablate">
        ablate
      </button>
      <button type="button" onClick={() => add(true)} disabled={node?.kind !== "latent" || full} data-action="add-steer" title="steer along an SAE latent's direction">
        steer
      </button>
    </span>
  );
}

function AddPatch({ items, hooks, full, onChange }: { items: UiIntervention[]; hooks: string[]; full: boolean; onChange: Props["onChange"] }) {
  const [hook, setHook] = useState(hooks.find((h) => h.endsWith("hook_resid_pre") && !h.startsWith("blocks.0.")) ?? hooks[0] ?? "");
  const [pos, setPos] = useState("");
  const positions = parsePositions(pos);
  const add = () => {
    if (positions === undefined || !hook || full) return;
    onChange([...items, { type: "patch", hook, positions }]);
  };
  return (
    <span className="add-patch" role="group" aria-label="patch from the second prompt">
      patch{" "}
      <select name="patch-hook" value={hook} onChange={(e) => setHook(e.target.value)} aria-label="hook to patch">
        {hooks.map((h) => (
          <option key={h} value={h}>
            {h}
          </option>
        ))}
      </select>{" "}
      at positions{" "}
      <input
        name="patch-positions"
        value={pos}
        onChange={(e) => setPos(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter") {
            e.preventDefault();
            add();
          }
        }}
        placeholder="all"
        size={6}
        aria-label="positions to patch"
        aria-invalid={positions === undefined}
        inputMode="numeric"
        title="token positions, e.g. 3,4 (empty: every position)"
      />{" "}
      <button type="button" onClick={add} disabled={positions === undefined || full} data-action="add-patch">
        add patch
      </button>
    </span>
  );
}

export function InterventionsPanel({ items, prompt2, residualHooks, patchHooks, max, onChange }: Props) {
  const listRef = useRef<HTMLOListElement>(null);
  const before = useRef(items.length);
  useEffect(() => {
    // a steer just added by a row action: its coefficient is the next thing to type
    const grew = items.length > before.current;
    before.current = items.length;
    const last = items[items.length - 1];
    if (grew && last?.type === "steer") {
      listRef.current?.querySelector<HTMLInputElement>(`li[data-index="${items.length - 1}"] input[name=coefficient]`)?.focus();
    }
  }, [items]);
  const full = items.length >= max;
  const set = (i: number) => (iv: UiIntervention) => onChange(items.map((x, j) => (j === i ? iv : x)));
  return (
    <section className="panel interventions" aria-label="interventions" data-testid="interventions">
      <strong>Interventions:</strong>
      {items.length === 0 ? (
        <span className="empty"> none — “ablate” on a row replaces that node, “steer” on an SAE latent's row adds its direction; a second prompt lets you patch from it.</span>
      ) : (
        <>
          <ol ref={listRef}>
            {items.map((iv, i) => {
              const why = inactiveReason(iv, prompt2);
              return (
                <li key={i} data-index={i} data-type={iv.type} className={why ? "inactive" : undefined}>
                  <Item iv={iv} index={i} prompt2={prompt2} residualHooks={residualHooks} patchHooks={patchHooks} set={set(i)} />
                  {why && <em className="why-inactive"> — inactive: {why}</em>}
                  <button type="button" className="chip-x" onClick={() => onChange(items.filter((_, j) => j !== i))} aria-label={`remove intervention ${i + 1} (${iv.type})`} title="remove" data-action="remove">
                    ×
                  </button>
                </li>
              );
            })}
          </ol>
          {items.length > 1 && (
            <button type="button" className="link" onClick={() => onChange([])}>
              remove all
            </button>
          )}
        </>
      )}
      <div className="iv-add">
        <AddNode items={items} full={full} onChange={onChange} />
        {prompt2 ? <AddPatch items={items} hooks={patchHooks} full={full} onChange={onChange} /> : <span className="hint">patching: set a second prompt to patch activations from it</span>}
        {full && <span className="hint">at most {max} interventions</span>}
      </div>
    </section>
  );
}
