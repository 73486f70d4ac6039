import { useEffect, useState } from "react";
import { ApiError } from "../api/client";

export interface Async<T> {
  data: T | null;
  error: ApiError | null;
  loading: boolean;
}

/** Run `fn` whenever `key` changes (null: do nothing); older answers are dropped. */
export function useAsync<T>(key: string | null, fn: (signal: AbortSignal) => Promise<T>): Async<T> {
  const [state, setState] = useState<Async<T>>({ data: null, error: null, loading: key !== null });
  useEffect(() => {
    if (key === null) {
      setState({ data: null, error: null, loading: false });
      return;
    }
    const ctl = new AbortController();
    setState((s) => ({ data: s.data, error: null, loading: true }));
    fn(ctl.signal).then(
      (data) => {
        if (!ctl.signal.aborted) setState({ data, error: null, loading: false });
      },
      (e: unknown) => {
        if (ctl.signal.aborted) return;
        const err =
          e instanceof ApiError ? e : new ApiError(String((e as Error)?.message ?? e), 0, "Error");
        setState({ data: null, error: err, loading: false });
      },
    );
    return () => ctl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);
  return state;
}
