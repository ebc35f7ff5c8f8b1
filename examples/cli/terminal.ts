/**
 * The demo's terminal output: live progress bars (cli-progress) and colour in a terminal; plain,
 * escape-free progress lines in a pipe or a CI log.
 */
import cliProgress from 'cli-progress';
import pc from 'picocolors';

/** Colour functions: identity functions when colour is off. */
export type Colors = ReturnType<typeof pc.createColors>;

/** A progress display for one long step. */
export interface Progress {
  /** Set the value (and optionally a short status text after the bar). */
  update(value: number, status?: string): void;
  /** Raise the total (more work became known). */
  setTotal(total: number): void;
  /** Print a line above the bar (a live bar) or as it is (plain output). */
  log(line: string): void;
  /** Finish: the bar stays on screen at its last value, or a last plain line is printed. */
  stop(status?: string): void;
}

/** Where the demo writes to, and how. */
export interface Terminal {
  /** Whether stdout is a terminal: live bars and colour. */
  readonly isTTY: boolean;
  readonly c: Colors;
  line(text?: string): void;
  progress(label: string, total: number): Progress;
}

/**
 * A terminal for stdout. Colour only in a terminal, and never with `color: false` or `NO_COLOR`.
 * In a pipe, progress is printed as a line at each quarter, so a CI log shows movement without
 * carriage returns or cursor codes.
 */
export function createTerminal(options: { readonly color: boolean }): Terminal {
  const isTTY = process.stdout.isTTY === true && process.env.TERM !== 'dumb';
  const noColor = process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '';
  const c = pc.createColors(isTTY && options.color && !noColor);
  const line = (text = ''): void => {
    process.stdout.write(`${text}\n`);
  };

  const live = (label: string, total: number): Progress => {
    const bars = new cliProgress.MultiBar({
      format: `  ${label.padEnd(12)} {bar} {value}/{total}  {status}`,
      barCompleteChar: '█',
      barIncompleteChar: '░',
      barsize: 28,
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      autopadding: true,
      fps: 15,
      stream: process.stdout,
    });
    const bar = bars.create(total, 0, { status: '' });
    return {
      update: (value, status) => bar.update(value, status === undefined ? {} : { status }),
      setTotal: (n) => bar.setTotal(n),
      log: (text) => bars.log(`${text}\n`),
      stop: (status) => {
        if (status !== undefined) bar.update({ status });
        // A last redraw prints the lines logged since the previous one (stop() alone drops them).
        bars.update();
        bars.stop();
      },
    };
  };

  const plain = (label: string, total: number): Progress => {
    let value = 0;
    let max = total;
    let printed = -1;
    const print = (status?: string): void => {
      line(`  ${label}: ${value}/${max}${status ? `  ${status}` : ''}`);
      printed = value;
    };
    return {
      update(next, status) {
        value = next;
        // A line at each quarter of the way: movement in the log, not one line per item.
        const step = Math.max(1, Math.ceil(max / 4));
        if (value !== printed && (value - Math.max(0, printed) >= step || value === max)) print(status);
      },
      setTotal(n) {
        max = n;
      },
      log: line,
      stop(status) {
        if (printed !== value) print(status);
      },
    };
  };

  return { isTTY, c, line, progress: (label, total) => (isTTY ? live(label, total) : plain(label, total)) };
}
