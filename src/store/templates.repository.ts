import { sql, type Selectable } from 'kysely';
import type { XmlObject } from '../xml/tree.js';
import type { Executor } from './jobs.repository.js';
import type { TemplatesTable } from './schema.js';
import { DB_NOW } from './now.js';

export interface Template {
  readonly templateId: string;
  readonly bucket: string;
  readonly tag: string;
  readonly name: string;
  /** The type container, e.g. PicProcess{IsPicInfo, ProcessRule}. */
  readonly body: XmlObject;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

function templateRowToTemplate(row: Selectable<TemplatesTable>): Template {
  return {
    templateId: row.template_id,
    bucket: row.bucket,
    tag: row.tag,
    name: row.name,
    body: row.body,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}

export async function findTemplate(db: Executor, bucket: string, templateId: string): Promise<Template | undefined> {
  const row = await db.selectFrom('templates').selectAll().where('bucket', '=', bucket).where('template_id', '=', templateId).executeTakeFirst();
  return row && templateRowToTemplate(row);
}

export async function insertTemplate(db: Executor, template: Pick<Template, 'templateId' | 'bucket' | 'tag' | 'name' | 'body'>): Promise<Template> {
  const row = await db
    .insertInto('templates')
    .values({ template_id: template.templateId, bucket: template.bucket, tag: template.tag, name: template.name, body: JSON.stringify(template.body) })
    .returningAll()
    .executeTakeFirstOrThrow();
  return templateRowToTemplate(row);
}

export async function updateTemplate(db: Executor, bucket: string, templateId: string, change: { name: string; body: XmlObject }): Promise<Template | undefined> {
  const row = await db
    .updateTable('templates')
    .set({ name: change.name, body: JSON.stringify(change.body), updated_at: DB_NOW })
    .where('bucket', '=', bucket)
    .where('template_id', '=', templateId)
    .returningAll()
    .executeTakeFirst();
  return row && templateRowToTemplate(row);
}

export async function deleteTemplate(db: Executor, bucket: string, templateId: string): Promise<boolean> {
  const result = await db.deleteFrom('templates').where('bucket', '=', bucket).where('template_id', '=', templateId).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

export interface TemplateListFilter {
  readonly bucket: string;
  readonly tag?: string;
  readonly ids?: readonly string[];
  readonly name?: string;
  readonly pageNumber: number;
  readonly pageSize: number;
}

export async function listTemplates(db: Executor, filter: TemplateListFilter): Promise<{ templates: Template[]; total: number }> {
  let query = db.selectFrom('templates').where('bucket', '=', filter.bucket);
  if (filter.tag) query = query.where('tag', '=', filter.tag);
  if (filter.ids) query = query.where('template_id', 'in', filter.ids.length ? filter.ids : ['']);
  // CI documents `name` as a name prefix; LIKE wildcards in it are matched literally.
  if (filter.name) query = query.where('name', 'like', `${filter.name.replace(/[\\%_]/g, '\\$&')}%`);
  const { total } = await query.select(sql<string>`count(*)`.as('total')).executeTakeFirstOrThrow();
  const rows = await query.selectAll().orderBy('created_at').orderBy('template_id')
    .limit(filter.pageSize).offset((filter.pageNumber - 1) * filter.pageSize).execute();
  return { templates: rows.map(templateRowToTemplate), total: Number(total) };
}
