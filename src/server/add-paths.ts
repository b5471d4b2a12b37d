/**
 * The paths of one `/api/v0/add` request, checked as its parts arrive, before the importer takes them
 * (so a refused request pins nothing): each path's length and depth, paths that would overwrite each
 * other, and the size of the answer they would make.
 */
import { ValidationError } from '../errors.js'

/** A path may not be longer than this, in UTF-8 bytes (Linux's PATH_MAX): no model folder comes near it. */
export const MAX_ADD_PATH_BYTES = 4096

/**
 * Nor have more segments than this. Model repositories nest a few levels (`onnx/fp16/model.onnx`); the
 * importer recurses once per level (a stack overflow near 2,000), and every folder gets a line of the answer.
 */
export const MAX_ADD_PATH_SEGMENTS = 64

/**
 * The most the answer's lines may take (one per file and per folder, each with its whole path), counted
 * as the parts arrive. The per-path limits alone do not bound it: a path adds a line for each new folder
 * above it, each holding up to the whole path, so one part of 4 KiB and 64 segments can add 63 lines of
 * up to 4 KiB (~256 KiB), and 10,000 parts (the multipart limit) ~2.6 GB. With this cap the answer and
 * the path sets behind it stay under 16 MiB, plus one progress line per 256 KiB of content and the
 * wrapper's line. A real folder of 10,000 files with 100-byte paths needs ~2.3 MB.
 */
export const MAX_ADD_LISTING_BYTES = 16 * 1024 * 1024

/** What a line adds to its name: `{"Name":,"Hash":"<CID, at most 59 characters>","Size":"<at most 20 digits>"}`, rounded up. */
const LINE_BYTES = 128

/** A CIDv1 in base32 (59 characters), the longest name a nameless part's line gets. */
const CID_PLACEHOLDER = 'b'.repeat(59)

/** How much of a path an error message shows (the path may be 4 KiB). */
const SHOWN_CHARS = 120

function shown (path: string): string {
  return JSON.stringify(path.length > SHOWN_CHARS ? `${path.slice(0, SHOWN_CHARS)}…` : path)
}

export class AddPaths {
  private readonly files = new Set<string>()
  /** Every folder made so far, explicit or implied by a path; the folders above one are always in too. */
  private readonly folders = new Set<string>()
  private listing = 0

  /**
   * Takes the path of the next part (a file, or a folder: `application/x-directory`); throws a
   * ValidationError (field `path`) for a path over the limits, one already given (a file twice), a
   * file where a folder is or the other way round, or an answer over MAX_ADD_LISTING_BYTES.
   */
  add (path: string, folder: boolean): void {
    if (Buffer.byteLength(path) > MAX_ADD_PATH_BYTES) throw ValidationError.field('path', `${shown(path)} is over ${MAX_ADD_PATH_BYTES} bytes`)
    const segments = path.split('/').length
    if (segments > MAX_ADD_PATH_SEGMENTS) throw ValidationError.field('path', `${shown(path)} has ${segments} segments, more than ${MAX_ADD_PATH_SEGMENTS}`)
    if (this.files.has(path)) throw ValidationError.field('path', folder ? `${shown(path)} is a file and a folder` : `${shown(path)} is given twice`)
    if (this.folders.has(path)) {
      if (folder) return // a folder part for a folder already made: nothing new
      throw ValidationError.field('path', `${shown(path)} is a folder and a file`)
    }
    // the folders this path makes, from the deepest up to one already made (those above it are made too)
    const made: string[] = []
    for (let end = path.lastIndexOf('/'); end > 0; end = path.lastIndexOf('/', end - 1)) {
      const above = path.slice(0, end)
      if (this.folders.has(above)) break
      if (this.files.has(above)) throw ValidationError.field('path', `${shown(path)} goes through ${shown(above)}, which is a file`)
      made.push(above)
    }
    for (const line of [path, ...made]) this.count(line, path)
    for (const above of made) this.folders.add(above)
    if (folder) this.folders.add(path)
    else this.files.add(path)
  }

  /** A part without a name, unwrapped: a root of its own, whose line is named by its CID. */
  addNameless (): void {
    this.count(CID_PLACEHOLDER, '')
  }

  /** Counts the line holding `name` (made by the part at `path`) against MAX_ADD_LISTING_BYTES. */
  private count (name: string, path: string): void {
    this.listing += JSON.stringify(name).length + LINE_BYTES
    if (this.listing > MAX_ADD_LISTING_BYTES) {
      throw ValidationError.field('path', `the answer would be over ${MAX_ADD_LISTING_BYTES} bytes (a line per file and folder, with its path) at ${shown(path)}`)
    }
  }
}
