// Active interventions (zero ablations), each removable; they apply to every request of the view.
interface Props {
  ablate: string[];
  onRemove: (node: string) => void;
  onClear: () => void;
}

export function InterventionsPanel({ ablate, onRemove, onClear }: Props) {
  return (
    <section className="panel interventions" aria-label="interventions" data-testid="interventions">
      <strong>Interventions:</strong>
      {ablate.length === 0 ? (
        <span className="empty"> none — “ablate” on a row zeroes that node and asks again.</span>
      ) : (
        <>
          <ul>
            {ablate.map((n) => (
              <li key={n}>
                zero-ablate <code>{n}</code>
                <button type="button" className="chip-x" onClick={() => onRemove(n)} aria-label={`remove ablation of ${n}`} title="remove">
                  ×
                </button>
              </li>
            ))}
          </ul>
          {ablate.length > 1 && (
            <button type="button" className="link" onClick={onClear}>
              remove all
            </button>
          )}
        </>
      )}
    </section>
  );
}
